/**
 * The API under test in the HTTP bench, in its own process so its RSS is its own: the real
 * app (production logger options at `LOG_LEVEL`) on its own test database and Redis prefix,
 * against the simulator at `GITHUB_URL`/`GITHUB_API_URL` from the environment. Prints
 * `port=<n>` on stderr once listening (stdout carries the request logs); drops its database and keys on SIGTERM.
 */
import { loggerOptions } from '@portico/core'
import { testConfig } from '@portico/testing'
import Fastify from 'fastify'
import app from '../../../apps/api/src/app.js'
import { serverOptions } from '../../../apps/api/src/server-options.js'

const teardowns: (() => unknown)[] = []
// Production-like: request logs at the configured level (info by default), the default pool size.
const config = await testConfig(
  { teardown: (fn) => void teardowns.push(fn) },
  // Production defaults for the pool and the pods revalidation window (tests pin their own).
  {
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DATABASE_POOL_MAX: undefined,
    PODS_REVALIDATE_SECONDS: undefined,
  },
)
const api = Fastify(serverOptions(config, loggerOptions(config.LOG_LEVEL)))
await api.register(app, { config })
await api.listen({ host: '127.0.0.1', port: 0 })
const address = api.server.address()
console.error(`port=${typeof address === 'object' && address ? address.port : 0}`)
process.on('SIGTERM', async () => {
  await api.close()
  for (const fn of teardowns.reverse()) await fn()
  process.exit(0)
})
