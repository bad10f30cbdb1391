import cookie from '@fastify/cookie'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** Cookie parsing and signing (`SESSION_SECRET`), used by the session and the OAuth flow. */
export default fp(
  async (fastify: FastifyInstance) => {
    await fastify.register(cookie, { secret: fastify.config.SESSION_SECRET })
  },
  { name: 'cookie' },
)
