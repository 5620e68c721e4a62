// How this process gets to import the repository's .ts files, shared by attendance.js and run-ts.js.
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SUPPORTED = 'Node 22 (22.18 or newer) or 24';

/**
 * Node 22.18+ and 24 strip types themselves (`process.features.typescript`), except from files
 * under node_modules, which Node refuses (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING). Otherwise
 * tsx, a dev dependency, registers its loader: that keeps Node 20 working in a development
 * checkout. With neither, exits 2 with one line naming the Node versions that work.
 */
export async function loadTypeScript(name) {
  const underNodeModules = fileURLToPath(import.meta.url)
    .split(sep)
    .includes('node_modules');
  if (process.features.typescript && !underNodeModules) return;
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    const where = underNodeModules ? ' outside node_modules (a clone of the repository, or the container image)' : '';
    process.stderr.write(`${name}: Node ${process.version} cannot run the TypeScript sources without tsx: use ${SUPPORTED}${where}\n`);
    process.exit(2);
  }
}
