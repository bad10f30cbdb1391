/**
 * The baseline of the HTTP bench: a bare Fastify hello-world (no logger, no plugins) on an
 * ephemeral port, run by plain Node like the API under test. Prints `port=<n>` on stderr once
 * listening; closes on SIGTERM.
 */
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
console.error(`port=${typeof address === 'object' && address ? address.port : 0}`)
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)))
