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
await startTracing(config, 'portico-worker')

const [
  { abandonLogs, flushLogs, logDestination, loggerOptions },
  { pino },
  { processors },
  { installSignalHandlers, startWorker },
] = await Promise.all([
  import('@portico/core'),
  import('pino'),
  import('./processors/index.js'),
  import('./runtime.js'),
])
// Bounded log queue (logDestination): pino's default let lines pile up in memory under load.
const stream = logDestination()
const logger = pino(loggerOptions(config.LOG_LEVEL, 'worker'), stream)
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'))
for (const deprecation of config.deprecations) logger.warn(deprecation)
const runtime = await startWorker(config, processors, logger).catch(async (err: unknown) => {
  // One log line naming what failed, not an uncaught stack trace.
  logger.fatal({ err }, `worker could not start: ${(err as Error).message}`)
  await flushLogs(stream)
  process.exit(1)
})
installSignalHandlers(runtime, logger, { flush: () => flushLogs(stream), abandon: () => abandonLogs(stream) })
