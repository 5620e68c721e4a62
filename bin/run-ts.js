#!/usr/bin/env node
// Runs a TypeScript entry point (benchmarks, scripts) the way bin/attendance.js runs the product.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadTypeScript } from './load-typescript.js';

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  console.error('usage: run-ts <file.ts> [args…]');
  process.exit(2);
}
await loadTypeScript('run-ts');
process.argv = [process.argv[0], resolve(file), ...rest];
await import(pathToFileURL(resolve(file)).href);
