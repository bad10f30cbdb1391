import { ConfigError, loadConfig } from '@portico/core'
import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import app from './app.js'
import { serverOptions } from './server-options.js'

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig()
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}

const server = Fastify(serverOptions(config))
await server.register(app, { config })

closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
  if (err) server.log.error({ err }, 'closing after an uncaught error')
  else server.log.info({ signal }, 'closing')
  await server.close()
})

try {
  await server.listen({ host: config.HOST, port: config.PORT })
} catch (err) {
  server.log.error({ err }, 'could not listen')
  process.exit(1)
}
