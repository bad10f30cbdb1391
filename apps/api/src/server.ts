import { ConfigError, loadConfig } from '@portico/core/config'
import { startTracing } from '@portico/core/tracing'

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig()
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}
// Before anything imports pg or ioredis: their tracing hooks module loading.
const tracing = await startTracing(config, 'portico-api')

const [
  { default: closeWithGrace },
  { default: Fastify },
  { default: app },
  { serverOptions },
  { abandonLogs, flushLogs, loggerOptions, logDestination },
] = await Promise.all([
  import('close-with-grace'),
  import('fastify'),
  import('./app.js'),
  import('./server-options.js'),
  import('@portico/core'),
])

// Bounded log queue (logDestination): pino's default let lines pile up in memory under load.
const stream = logDestination()
const server = Fastify(serverOptions(config, { ...loggerOptions(config.LOG_LEVEL, 'api'), stream }))
await server.register(app, { config })

// Exits that cannot wait (a second signal or error, the deadline) drop the queued log lines, so a
// stalled log reader cannot hold the process; a graceful close waits for them (flushLogs).
const abandon = () => abandonLogs(stream)
closeWithGrace(
  { delay: config.SHUTDOWN_TIMEOUT_MS, onTimeout: abandon, onSecondSignal: abandon, onSecondError: abandon },
  async ({ signal, err }) => {
    try {
      if (err) server.log.error({ err }, 'closing after an uncaught error')
      else server.log.info({ signal }, 'closing')
      // Requests in flight get half the deadline; connections still busy then (a client that sent
      // half a request and stopped, which Node no longer times out once the server closes) are
      // cut, so that the onClose hooks (Redis, Postgres, the metrics listener) still run in time.
      const cut = setTimeout(() => server.server.closeAllConnections(), config.SHUTDOWN_TIMEOUT_MS / 2)
      await server.close()
      clearTimeout(cut)
      await tracing
        ?.shutdown()
        .catch((flushErr: unknown) => server.log.warn({ err: flushErr }, 'could not flush traces'))
    } finally {
      await flushLogs(stream)
    }
  },
)

try {
  await server.listen({ host: config.HOST, port: config.PORT })
} catch (err) {
  server.log.error({ err }, 'could not listen')
  await flushLogs(stream)
  process.exit(1)
}
