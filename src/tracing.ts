import { context, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import packageJson from '../package.json' with { type: 'json' };

export type { Span, Tracer } from '@opentelemetry/api';

export interface Tracing {
  readonly tracer: Tracer;
  /** Sends what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

/**
 * OpenTelemetry traces over OTLP/HTTP (JSON) to `<endpoint>/v1/traces`, when an endpoint is
 * configured. Without one, nothing is loaded and no span is ever made: the callers hold an
 * undefined tracer and skip every tracing line, so the webhook hot path pays nothing.
 */
export async function startTracing(endpoint: string | undefined): Promise<Tracing | undefined> {
  if (endpoint === undefined) return undefined;
  const [{ TracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'stream-attendance', 'service.version': packageJson.version }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }) })],
  });
  return {
    // The provider is used directly rather than registered globally, so two services in one
    // process (tests, the demo) never share or replace each other's.
    tracer: provider.getTracer('stream-attendance', packageJson.version),
    shutdown: () => provider.shutdown(),
  };
}

/** Starts a span as a child of `parent` (or a root span). */
export function startChildSpan(tracer: Tracer, name: string, parent: Span | undefined, attributes: Record<string, string | number | boolean> = {}): Span {
  const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
  return tracer.startSpan(name, { attributes }, ctx);
}

/** Ends `span`, marked as an error when `error` is given. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : new Error(String(error)));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
