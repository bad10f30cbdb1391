import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { StopSignal } from '@portico/core'
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
  { abandonLogs, flushLogs, loggerOptions, logDestination, onStopSignals, STOP_SIGNALS },
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

// Every open connection, and those whose request is in a handler (for the shutdown's cut below).
const connections = new Set<Socket>()
const handling = new Set<Socket>()
server.server.on('connection', (socket: Socket) => {
  connections.add(socket)
  socket.once('close', () => {
    connections.delete(socket)
    handling.delete(socket)
  })
})
let closing = false
server.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
  handling.add(req.socket)
  res.once('close', () => {
    handling.delete(req.socket)
    // Node closes idle keep-alive connections once, when the close starts: one that becomes idle
    // later would hold the close until its keep-alive timeout.
    if (closing) req.socket.end()
  })
})

// Exits that cannot wait (a second signal or error, the deadline) drop the queued log lines, so a
// stalled log reader cannot hold the process; a graceful close waits for them (flushLogs).
const abandon = () => abandonLogs(stream)
// SIGTERM and SIGINT are ours (onStopSignals): the copies npm and tsx forward of a signal sent to
// the process group are one request, where close-with-grace took the second as "exit now".
let stopSignal: StopSignal | undefined
const grace = closeWithGrace(
  {
    delay: config.SHUTDOWN_TIMEOUT_MS,
    onTimeout: abandon,
    onSecondSignal: abandon,
    onSecondError: abandon,
    skip: [...STOP_SIGNALS],
  },
  async ({ signal, err }) => {
    try {
      if (err) server.log.error({ err }, 'closing after an uncaught error')
      else server.log.info({ signal: signal ?? stopSignal }, 'closing')
      // Halfway to the deadline, connections that hold no request in a handler (a client that
      // sent half a request and stopped, which Node no longer times out once the server closes)
      // are cut, so that the close and its onClose hooks (Redis, Postgres) still run in time.
      // Requests in handlers keep the whole deadline.
      closing = true
      const cut = setTimeout(() => {
        for (const socket of connections) if (!handling.has(socket)) socket.destroy()
      }, config.SHUTDOWN_TIMEOUT_MS / 2)
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

onStopSignals({
  stop(signal) {
    stopSignal = signal
    void grace.close()
  },
  again(signal) {
    server.log.warn({ signal }, 'second signal: exiting now')
    abandon()
    process.exit(1)
  },
})

try {
  await server.listen({ host: config.HOST, port: config.PORT })
} catch (err) {
  server.log.error({ err }, 'could not listen')
  await flushLogs(stream)
  process.exit(1)
}
