import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Every response carries its request id in `x-request-id` (a random UUID, or a trusted proxy's;
 * see `requestIdGenerator`), so a person reporting a problem can quote it and it can be found in
 * the logs of the API and of the jobs the request enqueued.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.addHook('onRequest', async (request, reply) => {
      reply.header('x-request-id', request.id)
    })
  },
  { name: 'request-id' },
)
