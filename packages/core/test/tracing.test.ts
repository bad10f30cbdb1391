import t from 'tap'
import { activeTracing, startTracing } from '../src/tracing.js'

// The OpenTelemetry API keeps its global registrations under this symbol (api/src/internal/global-utils.ts).
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

t.test('without OTEL_EXPORTER_OTLP_ENDPOINT nothing is started or registered', async (t) => {
  t.equal(await startTracing({}, 'portico-test'), null)
  t.equal(await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }, 'portico-test'), null)
  t.equal(activeTracing(), null)
  t.equal((globalThis as Record<symbol, unknown>)[OTEL_GLOBAL], undefined, 'no tracer provider registered')
})
