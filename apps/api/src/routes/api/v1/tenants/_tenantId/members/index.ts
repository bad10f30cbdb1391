import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { changeTenantRole, findTenantRole, findUserByLogin } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { SetTenantMemberBody, TenantMember, TenantMemberParams } from '../../../../../../schemas/tenants.js'

/** `PUT /api/v1/tenants/{tenantId}/members/{login}`: tenant owners and admins manage members. */
export default async function tenantMemberRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.put(
    '/:login',
    {
      preHandler: fastify.requireTenantRole('owner', 'admin'),
      schema: { params: TenantMemberParams, body: SetTenantMemberBody, response: { 200: TenantMember } },
    },
    async (request) => {
      const tenant = request.tenant!
      const { role } = request.body
      const user = await findUserByLogin(fastify.db, request.params.login)
      if (!user) {
        throw new AppError(404, 'USER_NOT_FOUND', `${request.params.login} has never signed in to Portico.`)
      }
      const current = await findTenantRole(fastify.db, tenant.id, user.id)
      // Only owners make or unmake owners.
      if ((role === 'owner' || current === 'owner') && tenant.role !== 'owner') {
        throw new AppError(403, 'INSUFFICIENT_ROLE', 'This action requires one of: owner.')
      }
      // Checked and written under row locks: two concurrent demotions cannot remove both owners.
      if ((await changeTenantRole(fastify.db, tenant.id, user.id, role)) === 'last-owner') {
        throw new AppError(409, 'LAST_OWNER', 'A tenant needs at least one owner.')
      }
      return { login: user.login, role }
    },
  )
}
