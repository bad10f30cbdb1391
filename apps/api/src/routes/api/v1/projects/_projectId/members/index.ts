import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import {
  type Executor,
  findProjectAccess,
  findUserByLogin,
  listProjectMembers,
  lockProject,
  lockTenant,
  removeProjectMember,
  setProjectMember,
} from '@portico/db'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { effectiveProjectRole, insufficientRole } from '../../../../../../plugins/app/auth.js'
import { errorResponses } from '../../../../../../schemas/common.js'
import { NoContent } from '../../../../../../schemas/errors.js'
import {
  ProjectMember,
  ProjectMemberList,
  ProjectMemberParams,
  ProjectParams,
  SetProjectMemberBody,
} from '../../../../../../schemas/projects.js'

/** Project members: listed by any member, managed by project (or tenant) owners and admins. */
export default async function projectMemberRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  const userByLogin = async (login: string) => {
    const user = await findUserByLogin(fastify.db, login)
    if (!user) throw new AppError(404, 'USER_NOT_FOUND', `${login} has never signed in to Portico.`)
    return user
  }
  /**
   * The user's own project row's role, and their effective role (tenant owners and admins act as
   * project owners and admins), or null outside the project.
   */
  const standing = async (db: Executor, projectId: string, userId: string) => {
    const access = await findProjectAccess(db, projectId, userId)
    const row = access?.projectRole ?? undefined
    const role = access ? effectiveProjectRole(access.tenantRole, access.projectRole) : null
    return { row, role }
  }
  const MANAGERS = ['owner', 'admin'] as const
  /**
   * Runs a membership change with the tenant and the project locked (in that order, as every
   * membership change takes them), after checking the caller's own role again
   * under the lock: the checks that allow it and the write see the same members (an admin's
   * demotion racing an owner's promotion, or an admin demoted while waiting, was let through).
   * `change` gets whether the caller is an owner: only owners make or unmake owners, tenant
   * owners included. 404 PROJECT_NOT_FOUND when the project went meanwhile.
   */
  const withProjectLocked = <T>(
    request: FastifyRequest,
    change: (trx: Executor, assertMayTouchOwner: () => void) => Promise<T>,
  ) =>
    fastify.db.transaction().execute(async (trx) => {
      const { id: projectId, tenant_id } = request.project!
      // The tenant first, as tenant membership changes lock it: adding someone to a project
      // adds them to its tenant, and the opposite order deadlocked with such a change (review).
      if (!(await lockTenant(trx, tenant_id)) || !(await lockProject(trx, projectId)))
        throw new AppError(404, 'PROJECT_NOT_FOUND', 'Project not found.')
      const { role } = await standing(trx, projectId, request.user!.id)
      if (!role) throw new AppError(404, 'PROJECT_NOT_FOUND', 'Project not found.')
      if (!(MANAGERS as readonly string[]).includes(role)) throw insufficientRole(MANAGERS)
      return change(trx, () => {
        if (role !== 'owner') throw insufficientRole(['owner'])
      })
    })

  fastify.get(
    '/',
    {
      preHandler: fastify.requireProjectRole(),
      schema: {
        summary: "The project's members, with their project roles",
        description:
          "Any member of the project (tenant owners and admins included). Lists the project's own member rows: a tenant owner or admin acting on the project without a row of their own is not listed, and a listed role is the stored project role even where the tenant role grants more.",
        params: ProjectParams,
        response: { 200: ProjectMemberList, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const { tenant_id, id } = request.project!
      return { members: await listProjectMembers(fastify.db, tenant_id, id) }
    },
  )

  fastify.put(
    '/:login',
    {
      preHandler: fastify.requireProjectRole('owner', 'admin'),
      schema: {
        summary: 'Add a user to the project or change their project role',
        description:
          "Project owners and admins, and tenant owners and admins (others: 403 INSUFFICIENT_ROLE); only owners grant the `owner` role or change an owner's. The user must have signed in to Portico once (404 USER_NOT_FOUND). Someone added who was not in the tenant yet becomes a tenant `member`. Runs with the tenant and the project locked; a change Postgres ends for a deadlock is 409 CONCURRENT_CHANGE (try again).",
        params: ProjectMemberParams,
        body: SetProjectMemberBody,
        response: { 200: ProjectMember, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { tenant_id, id } = request.project!
      const { role } = request.body
      const user = await userByLogin(request.params.login)
      await withProjectLocked(request, async (trx, assertMayTouchOwner) => {
        const target = await standing(trx, id, user.id)
        if (role === 'owner' || target.role === 'owner') assertMayTouchOwner()
        if (!(await setProjectMember(trx, tenant_id, id, user.id, role)))
          throw new AppError(404, 'PROJECT_NOT_FOUND', 'Project not found.')
      })
      return { login: user.login, name: user.name, avatar_url: user.avatar_url, role }
    },
  )

  fastify.delete(
    '/:login',
    {
      preHandler: fastify.requireProjectRole('owner', 'admin'),
      schema: {
        summary: 'Remove a user from the project',
        description:
          'Project owners and admins, and tenant owners and admins (others: 403 INSUFFICIENT_ROLE); only owners remove an owner. Removes the project membership only: the user stays in the tenant. 404 USER_NOT_FOUND for a login that never signed in, 404 MEMBER_NOT_FOUND when the user has no row in this project (a tenant owner or admin acting without one included). A change Postgres ends for a deadlock is 409 CONCURRENT_CHANGE (try again).',
        params: ProjectMemberParams,
        response: { 204: NoContent, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { tenant_id, id } = request.project!
      const user = await userByLogin(request.params.login)
      await withProjectLocked(request, async (trx, assertMayTouchOwner) => {
        const target = await standing(trx, id, user.id)
        if (!target.row)
          throw new AppError(404, 'MEMBER_NOT_FOUND', `${user.login} is not a member of this project.`)
        if (target.role === 'owner') assertMayTouchOwner()
        await removeProjectMember(trx, tenant_id, id, user.id)
      })
      return reply.code(204).send(null)
    },
  )
}
