#!/usr/bin/env node
// Runs the TypeScript sources with Node's own type stripping (Node 22.18+ and 24): no loader, no
// build step, nothing written to disk, so it starts on a read-only root filesystem. Node 20 in a
// development checkout still works through tsx, a dev dependency; a production install has none.
import { existsSync } from 'node:fs';
import { loadTypeScript } from './load-typescript.js';

await loadTypeScript('attendance');
const { main } = await import('../src/cli.ts');
// A development checkout adds demo and simulate; the image and a production install have no tools/.
const toolsUrl = new URL('../tools/commands.ts', import.meta.url);
const { developmentCommands } = existsSync(toolsUrl) ? await import(toolsUrl.href) : {};
const code = await main(process.argv.slice(2), { developmentCommands });
process.exitCode = code;
// Every command closes what it opened; should a stray handle linger anyway, the exit code still stands.
setTimeout(() => process.exit(code), 2_000).unref();
