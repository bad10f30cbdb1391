import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { changeTenantRole, findUserByLogin, lockTenant, lockTenantRoles } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { insufficientRole } from '../../../../../../plugins/app/auth.js'
import { errorResponses } from '../../../../../../schemas/common.js'
import { SetTenantMemberBody, TenantMember, TenantMemberParams } from '../../../../../../schemas/tenants.js'

const tenantNotFound = () => new AppError(404, 'TENANT_NOT_FOUND', 'Tenant not found.')

/** `PUT /api/v1/tenants/{tenantId}/members/{login}`: tenant owners and admins manage members. */
export default async function tenantMemberRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.put(
    '/:login',
    {
      preHandler: fastify.requireTenantRole('owner', 'admin'),
      schema: {
        summary: 'Add a user to the tenant or change their tenant role',
        description:
          'Tenant owners and admins (others: 403 INSUFFICIENT_ROLE); only owners grant or remove `owner`. The user must have signed in once (404 USER_NOT_FOUND). The last owner cannot step down: 409 LAST_OWNER. Checked and written with the tenant locked; a change Postgres ends for a deadlock is 409 CONCURRENT_CHANGE.',
        params: TenantMemberParams,
        body: SetTenantMemberBody,
        response: { 200: TenantMember, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const tenant = request.tenant!
      const { role } = request.body
      const user = await findUserByLogin(fastify.db, request.params.login)
      if (!user) {
        throw new AppError(404, 'USER_NOT_FOUND', `${request.params.login} has never signed in to Portico.`)
      }
      const callerId = request.user!.id
      // The checks and the write see the same members: the tenant is locked, and the caller's and
      // the target's roles are read under their row locks (a review's example: an admin demoted
      // while their request waited still removed an owner).
      const outcome = await fastify.db.transaction().execute(async (trx) => {
        if (!(await lockTenant(trx, tenant.id))) throw tenantNotFound()
        const roles = await lockTenantRoles(trx, tenant.id, [callerId, user.id])
        const caller = roles.get(callerId)
        if (!caller) throw tenantNotFound()
        if (caller !== 'owner' && caller !== 'admin') throw insufficientRole(['owner', 'admin'])
        // Only owners make or unmake owners.
        if ((role === 'owner' || roles.get(user.id) === 'owner') && caller !== 'owner')
          throw insufficientRole(['owner'])
        // The last owner check locks the owners' rows too: two demotions cannot remove both.
        return changeTenantRole(trx, tenant.id, user.id, role)
      })
      if (outcome === 'last-owner')
        throw new AppError(409, 'LAST_OWNER', 'A tenant needs at least one owner.')
      return { login: user.login, role }
    },
  )
}
