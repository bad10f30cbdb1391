import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../../schemas/common.js'
import { RefreshResult } from '../../../schemas/pods.js'

/** `POST /api/refresh`: drops the cached specs listing and repository answers (signed-in users only). */
export default async function refreshRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  fastify.post(
    '/',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['pods'],
        summary: 'Clear the pods cache',
        response: { 200: RefreshResult, ...errorResponses(401, 403) },
      },
    },
    async () => {
      await fastify.refreshPods()
      return { message: 'Cache cleared' }
    },
  )
}
