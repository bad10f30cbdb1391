import { activeTracing } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Request spans (`@fastify/otel`: the request, its hooks and handler, named by route) when the
 * process started tracing (`OTEL_EXPORTER_OTLP_ENDPOINT`, see @portico/core's tracing.ts).
 * Registered before every other plugin, as @fastify/otel requires, so it sees every route.
 * Without tracing, @fastify/otel is never loaded.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    if (!activeTracing()) return
    const { FastifyOtelInstrumentation } = await import('@fastify/otel')
    // Probes and scrapes would drown the traces that matter.
    const instrumentation = new FastifyOtelInstrumentation({
      ignorePaths: (route) => route.url.startsWith('/health') || route.url === '/metrics',
      // The path without its query: `/auth/callback?code=…&state=…` must not reach a trace backend.
      requestHook: (span, request) => span.setAttribute('url.path', request.url.split('?')[0] ?? ''),
    })
    await fastify.register(instrumentation.plugin())
  },
  { name: 'portico-tracing' },
)
