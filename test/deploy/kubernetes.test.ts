import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { findTool, runTool } from './tools.ts';

// The manifests are checked by reading them, and rendered with `kubectl kustomize` where kubectl
// is installed (no cluster needed).
const root = new URL('../../', import.meta.url);
const dir = new URL('deploy/kubernetes/', root);
const read = (name: string) => readFile(new URL(name, dir), 'utf8');

type Manifest = { kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: any };

const byKind = (manifests: readonly Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
const podSpec = (workload: Manifest) => workload.spec.template.spec;
const container = (workload: Manifest) => podSpec(workload).containers[0];

async function loadResources(): Promise<Manifest[]> {
  const kustomization = parse(await read('kustomization.yaml'));
  const out: Manifest[] = [];
  for (const file of kustomization.resources as string[]) out.push(...parseAllDocuments(await read(file)).map((d) => d.toJS() as Manifest));
  return out;
}

const designVariables = [
  'DATABASE_URL',
  'STREAM_API_KEY',
  'STREAM_API_SECRET',
  'STREAM_PREVIOUS_API_SECRETS',
  'STREAM_BASE_URL',
  'PORT',
  'HOST',
  'LOG_LEVEL',
  'WORKER_CONCURRENCY',
  'RECONCILE_INTERVAL_MINUTES',
  'RECONCILE_LOOKBACK_DAYS',
  'DATABASE_POOL_SIZE',
];

describe('deploy/kubernetes', () => {
  let resources: Manifest[];
  let secret: Manifest;
  let config: Manifest;
  let serve: Manifest;
  let worker: Manifest;
  let migrate: Manifest;
  beforeAll(async () => {
    resources = await loadResources();
    secret = parse(await read('secret.example.yaml')) as Manifest;
    config = byKind(resources, 'ConfigMap')[0]!;
    const deployments = byKind(resources, 'Deployment');
    serve = deployments.find((d) => container(d).args[0] === 'serve')!;
    worker = deployments.find((d) => container(d).args[0] === 'worker')!;
    migrate = byKind(resources, 'Job')[0]!;
  });

  it('lists every manifest file in kustomization.yaml except the Secret example', async () => {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    const listed = parse(await read('kustomization.yaml')).resources as string[];
    expect([...listed, 'secret.example.yaml'].sort()).toEqual(files.sort());
    expect(resources.map((r) => r.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Deployment', 'Job', 'PodDisruptionBudget', 'Service']);
  });

  it('runs migrate as a Job with DATABASE_URL only, and serve and worker as Deployments', () => {
    expect(container(migrate).args).toEqual(['migrate']);
    expect(podSpec(migrate).restartPolicy).toBe('Never');
    expect(container(migrate).env.map((e: { name: string }) => e.name)).toEqual(['DATABASE_URL']);
    expect(container(migrate).envFrom).toBeUndefined();
    expect(container(serve).args).toEqual(['serve']);
    expect(container(worker).args).toEqual(['worker']);
  });

  it('probes serve on /healthz (liveness, start-up) and /readyz (readiness) at its container port', () => {
    const c = container(serve);
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.startupProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    const port = c.ports.find((p: { name: string }) => p.name === c.readinessProbe.httpGet.port);
    expect(port.containerPort).toBe(Number(config.data.PORT));
  });

  it('checks the worker, which serves no HTTP, with bin/healthcheck.js', () => {
    const c = container(worker);
    expect(c.livenessProbe.exec.command).toEqual(['node', 'bin/healthcheck.js']);
    expect(c.readinessProbe).toBeUndefined();
    expect(c.ports).toBeUndefined();
  });

  it('runs every pod non-root on a read-only root filesystem with nothing writable mounted, with resources set', () => {
    for (const workload of [serve, worker, migrate]) {
      const spec = podSpec(workload);
      const c = container(workload);
      expect(spec.securityContext.runAsNonRoot, workload.metadata.name).toBe(true);
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
      // Node strips the types itself and writes no cache, so not even /tmp needs to be writable.
      expect(c.volumeMounts).toBeUndefined();
      expect(spec.volumes).toBeUndefined();
      expect(c.resources.requests.cpu).toBeTruthy();
      expect(c.resources.requests.memory).toMatch(/Mi$/);
      expect(c.resources.limits.memory).toMatch(/Mi$/);
      expect(c.image).toBe('stream-attendance');
    }
  });

  it('uses only the design’s variables, each secret from the Secret and each setting from the ConfigMap', () => {
    const secretKeys = Object.keys(secret.stringData);
    expect(secretKeys.sort()).toEqual(['DATABASE_URL', 'STREAM_API_KEY', 'STREAM_API_SECRET', 'STREAM_PREVIOUS_API_SECRETS']);
    for (const value of Object.values(secret.stringData) as string[]) expect(value).not.toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const configKeys = Object.keys(config.data);
    for (const key of [...configKeys, ...secretKeys]) expect(designVariables).toContain(key);
    expect([...configKeys, ...secretKeys].sort()).toEqual([...designVariables].sort());
    for (const workload of [serve, worker, migrate]) {
      for (const env of container(workload).env) {
        expect(env.valueFrom.secretKeyRef.name).toBe(secret.metadata.name);
        expect(secretKeys).toContain(env.valueFrom.secretKeyRef.key);
        expect(env.name).toBe(env.valueFrom.secretKeyRef.key);
      }
    }
    for (const workload of [serve, worker]) expect(container(workload).envFrom).toEqual([{ configMapRef: { name: config.metadata.name } }]);
    // the worker verifies no webhook signatures, so it does not get the previous secrets
    expect(container(worker).env.map((e: { name: string }) => e.name)).not.toContain('STREAM_PREVIOUS_API_SECRETS');
  });

  it('points the Service and the PodDisruptionBudget at the serve pods only', () => {
    const service = byKind(resources, 'Service')[0]!;
    const pdb = byKind(resources, 'PodDisruptionBudget')[0]!;
    const labels = serve.spec.template.metadata.labels;
    const matches = (selector: Record<string, string>, podLabels: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    expect(matches(service.spec.selector, labels)).toBe(true);
    expect(matches(service.spec.selector, worker.spec.template.metadata.labels)).toBe(false);
    expect(matches(pdb.spec.selector.matchLabels, labels)).toBe(true);
    expect(matches(pdb.spec.selector.matchLabels, worker.spec.template.metadata.labels)).toBe(false);
    expect(pdb.spec.minAvailable).toBeLessThan(serve.spec.replicas);
    expect(container(serve).ports.map((p: { name: string }) => p.name)).toContain(service.spec.ports[0].targetPort);
    for (const workload of [serve, worker]) expect(matches(workload.spec.selector.matchLabels, workload.spec.template.metadata.labels)).toBe(true);
  });
});

describe('kubectl kustomize deploy/kubernetes', () => {
  let kubectl: readonly string[] | undefined;
  beforeAll(async () => {
    kubectl = await findTool([['kubectl']], ['version', '--client']);
    if (!kubectl) console.warn('kubectl kustomize skipped: kubectl is not installed (Debian: apt-get install -y kubernetes-client)');
  });

  it('renders the manifests, with the image and the part-of label applied', async (context) => {
    if (!kubectl) return context.skip();
    const result = await runTool(kubectl[0]!, ['kustomize', fileURLToPath(dir)]);
    expect(result.code, result.stderr).toBe(0);
    const rendered = parseAllDocuments(result.stdout).map((d) => d.toJS() as Manifest);
    expect(rendered.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Deployment', 'Job', 'PodDisruptionBudget', 'Service']);
    expect(rendered.some((m) => m.kind === 'Secret')).toBe(false);
    for (const m of rendered) expect(m.metadata.labels?.['app.kubernetes.io/part-of'], `${m.kind} ${m.metadata.name}`).toBe('stream-attendance');
    for (const m of rendered.filter((r) => ['Deployment', 'Job'].includes(r.kind))) {
      expect(container(m).image).toMatch(/^registry\.example\.com\/stream-attendance:/);
    }
  });
});
