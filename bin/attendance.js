#!/usr/bin/env node
// The package runs its TypeScript sources through tsx: one path for `npx attendance`,
// `npm start` and the container, with no build step to forget.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Every command closes what it opened; should a stray handle linger anyway, the exit code still stands.
setTimeout(() => process.exit(code), 2_000).unref();
