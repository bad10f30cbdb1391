import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { AuthUser } from '../../../schemas/auth.js'

/** The signed-in user, from the session: no GitHub call. */
export default async function authUserRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  fastify.get(
    '/user',
    { preHandler: fastify.requireUser, schema: { response: { 200: AuthUser } } },
    async (request) => {
      const user = request.user!
      return { login: user.login, name: user.name, avatar_url: user.avatar_url }
    },
  )
}
