import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import { errorBody } from '@portico/core'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

const BASE_PATH = '/admin/queues'

/**
 * Bull Board for operators at `/admin/queues`, in its own encapsulated context: anonymous
 * visitors are sent to sign in, signed-in users who are not operators (OPERATOR_GITHUB_IDS, or the deprecated OPERATOR_LOGINS)
 * get 403.
 */
export default async function adminRoutes(fastify: FastifyInstance) {
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.user) {
      return reply.redirect(`/auth/login?returnTo=${BASE_PATH}`, 302)
    }
    if (!fastify.isOperator(request.user)) {
      // Answered here: Bull Board installs its own error handler for its routes.
      return reply
        .code(403)
        .send(
          errorBody(403, 'OPERATOR_REQUIRED', 'The queue dashboard is for operators (OPERATOR_GITHUB_IDS).'),
        )
    }
  })

  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(BASE_PATH)
  createBullBoard({
    queues: Object.values(fastify.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Portico queues' } },
  })
  await fastify.register(serverAdapter.registerPlugin() as never, { prefix: '/queues' })
}
