import { type Teardown, testConfig } from '@portico/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'

/**
 * Builds the whole API against real Postgres and Redis with a per-file database and queue
 * prefix; `env` overrides configuration variables and `setup` runs before `ready` (to add
 * test-only routes). Closed at teardown.
 */
export async function build(
  t: Teardown,
  env: Record<string, string | undefined> = {},
  setup?: (app: FastifyInstance) => void | Promise<void>,
): Promise<FastifyInstance> {
  const config = await testConfig(t, env)
  const fastify = Fastify(serverOptions(config, false))
  await fastify.register(app, { config })
  await setup?.(fastify)
  await fastify.ready()
  t.teardown(() => fastify.close())
  return fastify
}
