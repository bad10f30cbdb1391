import { createDb, type Db } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
}

/** Kysely over a pg pool, destroyed when the app closes. */
export default fp(
  async (fastify: FastifyInstance) => {
    const db = createDb(fastify.config)
    fastify.decorate('db', db)
    fastify.addHook('onClose', async () => {
      await db.destroy()
    })
  },
  { name: 'db' },
)
