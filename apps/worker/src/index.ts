import { ConfigError, loadConfig, loggerOptions } from '@portico/core'
import { pino } from 'pino'
import { processors } from './processors/index.js'
import { installSignalHandlers, startWorker } from './runtime.js'

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig()
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}
const logger = pino({ ...loggerOptions(config.LOG_LEVEL), base: { process: 'worker', pid: process.pid } })
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'))
const runtime = await startWorker(config, processors, logger)
installSignalHandlers(runtime, logger)
