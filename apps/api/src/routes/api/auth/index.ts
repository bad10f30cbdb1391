import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { AuthUser } from '../../../schemas/auth.js'
import { errorResponses } from '../../../schemas/common.js'

/** The signed-in user, from the session: no GitHub call. */
export default async function authUserRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  fastify.get(
    '/user',
    {
      preHandler: fastify.requireUser,
      schema: {
        summary: 'The signed-in user (from the session, no GitHub call)',
        response: { 200: AuthUser, ...errorResponses(401) },
      },
    },
    async (request) => {
      const user = request.user!
      return { login: user.login, name: user.name, avatar_url: user.avatar_url }
    },
  )
}
