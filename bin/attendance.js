#!/usr/bin/env node
// The package runs its TypeScript sources through tsx: one path for `npx attendance`,
// `npm start` and the container, with no build step to forget.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
