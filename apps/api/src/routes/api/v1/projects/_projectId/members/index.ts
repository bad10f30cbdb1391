import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import {
  type Executor,
  findProjectAccess,
  findUserByLogin,
  listProjectMembers,
  lockProject,
  removeProjectMember,
  setProjectMember,
} from '@portico/db'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { effectiveProjectRole } from '../../../../../../plugins/app/auth.js'
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
   * The user's own project row's role, and whether they are an owner of the project in effect
   * (by that row or as an owner of its tenant).
   */
  const standing = async (db: Executor, request: FastifyRequest, userId: string) => {
    const access = await findProjectAccess(db, request.project!.id, userId)
    const row = access?.projectRole ?? undefined
    const owner = access ? effectiveProjectRole(access.tenantRole, access.projectRole) === 'owner' : false
    return { row, owner }
  }
  /**
   * Runs a membership change with the project locked: the check that allows it and the write see
   * the same members (an admin's demotion racing an owner's promotion was let through).
   */
  const withProjectLocked = <T>(request: FastifyRequest, change: (trx: Executor) => Promise<T>) =>
    fastify.db.transaction().execute(async (trx) => {
      await lockProject(trx, request.project!.id)
      return change(trx)
    })
  // Only owners make or unmake owners, tenant owners included.
  const assertMayTouchOwner = (request: FastifyRequest) => {
    if (request.project!.role !== 'owner') {
      throw new AppError(403, 'INSUFFICIENT_ROLE', 'This action requires one of: owner.')
    }
  }

  fastify.get(
    '/',
    {
      preHandler: fastify.requireProjectRole(),
      schema: { params: ProjectParams, response: { 200: ProjectMemberList } },
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
      schema: { params: ProjectMemberParams, body: SetProjectMemberBody, response: { 200: ProjectMember } },
    },
    async (request) => {
      const { tenant_id, id } = request.project!
      const { role } = request.body
      const user = await userByLogin(request.params.login)
      await withProjectLocked(request, async (trx) => {
        const { owner } = await standing(trx, request, user.id)
        if (role === 'owner' || owner) assertMayTouchOwner(request)
        await setProjectMember(trx, tenant_id, id, user.id, role)
      })
      return { login: user.login, name: user.name, avatar_url: user.avatar_url, role }
    },
  )

  fastify.delete(
    '/:login',
    {
      preHandler: fastify.requireProjectRole('owner', 'admin'),
      schema: { params: ProjectMemberParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const { tenant_id, id } = request.project!
      const user = await userByLogin(request.params.login)
      await withProjectLocked(request, async (trx) => {
        const { row, owner } = await standing(trx, request, user.id)
        if (!row)
          throw new AppError(404, 'MEMBER_NOT_FOUND', `${user.login} is not a member of this project.`)
        if (owner) assertMayTouchOwner(request)
        await removeProjectMember(trx, tenant_id, id, user.id)
      })
      return reply.code(204).send(null)
    },
  )
}
