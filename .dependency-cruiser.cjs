/**
 * The dependency rules of stream-attendance, checked by dependency-cruiser:
 *
 *   commands → http | queue | ingest | reconcile → stream, db
 *   config, logger, errors are leaves; stream/ and db/ never import each other;
 *   nothing imports commands/; src/ never imports tools/, test/ or bench/;
 *   policy/ decides without I/O; no cycles at run time. tools/ may import src/.
 *
 * Type-only imports are erased before run time, so the rules about what runs (policy/'s purity,
 * cycles) let them through; the rules about layering count them, since a type from a higher
 * layer couples the lower one to it just the same.
 */

/** The folders between the composition roots and stream/, db/: they do the work. */
const MIDDLE = '^src/(http|queue|ingest|reconcile|archive|health|lifecycle|rollup)/';
const LEAVES = '^src/(config|logger|errors)\\.ts$';

/** Modules that open sockets, files or processes: policy/ must not load them. */
const IO_CORE = '^(node:)?(fs|fs/promises|net|http|https|http2|dgram|dns|tls|child_process|cluster|worker_threads)$';
const IO_PACKAGES = '(^|/)node_modules/(pg|pg-[^/]+|undici|fastify|@fastify/[^/]+|fastify-[^/]+|drizzle-orm|pino)/';
const IO_SOURCES = '^src/(db|queue|http|ingest|reconcile|lifecycle|rollup|health|commands)/|^src/logger\\.ts$|^src/stream/(client|request)\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-runtime-cycle',
      comment: 'A cycle that exists at run time makes module order matter at start-up; type-only edges are erased and may close a loop.',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'nothing-imports-commands',
      comment: "commands/ are composition roots: only the CLI and the dev tools' own commands reach them.",
      severity: 'error',
      from: { path: '^(src|tools)/', pathNot: '^src/commands/|^src/cli\\.ts$|^tools/commands(\\.ts$|/)' },
      to: { path: '^src/commands/' },
    },
    {
      name: 'leaves-stay-leaves',
      comment: 'config, logger and errors sit under everything, so they may import only each other.',
      severity: 'error',
      from: { path: LEAVES },
      to: { path: '^src/', pathNot: LEAVES },
    },
    {
      name: 'stream-not-db',
      comment: "stream/ knows Stream's wire format and nothing of our tables.",
      severity: 'error',
      from: { path: '^src/stream/' },
      to: { path: '^src/db/' },
    },
    {
      name: 'db-not-stream',
      comment: "db/ holds our schema and client and nothing of Stream's wire format.",
      severity: 'error',
      from: { path: '^src/db/' },
      to: { path: '^src/stream/' },
    },
    {
      name: 'bottom-not-up',
      comment: 'stream/ and db/ are the bottom layer: they never reach up into the folders that use them.',
      severity: 'error',
      from: { path: '^src/(stream|db)/' },
      to: { path: `${MIDDLE}|^src/commands/|^src/cli\\.ts$` },
    },
    {
      name: 'product-not-tools',
      comment: 'The production install has no tools/, test/ or bench/: src/ must run without them.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(tools|test|bench)/' },
    },
    {
      name: 'policy-is-pure',
      comment: 'policy/ holds decisions tested by tables without a database; types from anywhere are fine, code with I/O is not.',
      severity: 'error',
      from: { path: '^src/policy/' },
      to: { path: `${IO_CORE}|${IO_PACKAGES}|${IO_SOURCES}`, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing: a moved file whose importers were not updated, or a missing dependency.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|coverage|bench/\\.tmp)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
