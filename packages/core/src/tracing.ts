import type { Telemetry } from 'bullmq'
import type { Config } from './config.js'

/** What a process needs from tracing once it is started. */
export interface Tracing {
  /** BullMQ's telemetry adapter: spans for adding and processing jobs, with context carried in the job. */
  bullmqTelemetry: Telemetry
  /** Flushes spans still buffered and stops the exporter. */
  shutdown(): Promise<void>
}

let active: Tracing | null = null

/** The started tracing of this process, or null (then nothing of OpenTelemetry is loaded). */
export function activeTracing(): Tracing | null {
  return active
}

/**
 * Starts OpenTelemetry tracing when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else returns null
 * without loading any of it. Spans go over OTLP/HTTP (JSON) to `{endpoint}/v1/traces`, as the
 * OpenTelemetry exporter specification derives the signal URL from the base endpoint.
 * Instruments pg (statements without values), ioredis (command names only: arguments hold session
 * contents and ids) and undici (GitHub calls; no headers); BullMQ through `bullmq-otel`; Fastify
 * through `@fastify/otel` (registered by the API itself). Call it before pg or ioredis are
 * imported: their instrumentation hooks module loading (`@opentelemetry/instrumentation/hook.mjs`).
 */
export async function startTracing(
  config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_SERVICE_NAME'>,
  defaultServiceName: string,
): Promise<Tracing | null> {
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, '')
  if (!endpoint) return null
  if (active) return active
  const { register } = await import('node:module')
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  const [trace, otlp, resources, instrumentation, pg, ioredis, undici, bullmqOtel] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-ioredis'),
    import('@opentelemetry/instrumentation-undici'),
    import('bullmq-otel'),
  ])
  const provider = new trace.NodeTracerProvider({
    resource: resources.resourceFromAttributes({
      'service.name': config.OTEL_SERVICE_NAME ?? defaultServiceName,
    }),
    spanProcessors: [
      new trace.BatchSpanProcessor(new otlp.OTLPTraceExporter({ url: `${endpoint}/v1/traces` }), {
        scheduledDelayMillis: 1000,
      }),
    ],
  })
  provider.register()
  instrumentation.registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new pg.PgInstrumentation(),
      // Only the command name: arguments carry session contents, ids and job data.
      new ioredis.IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
      new undici.UndiciInstrumentation(),
    ],
  })
  active = {
    bullmqTelemetry: new bullmqOtel.BullMQOtel('portico') as unknown as Telemetry,
    shutdown: () => provider.shutdown(),
  }
  return active
}
