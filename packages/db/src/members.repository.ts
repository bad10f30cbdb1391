import { sql } from 'kysely'
import type { Executor } from './db.js'
import type { ProjectRole } from './schema.js'

/** A project member as the API lists them. */
export interface ProjectMember {
  user_id: string
  login: string
  name: string | null
  avatar_url: string | null
  role: ProjectRole
}

/**
 * Adds a user to a project of `tenantId` or changes their role; the user also joins the tenant
 * as a plain member when they are not in it yet. Returns false when the project is not in that
 * tenant.
 */
export async function setProjectMember(
  db: Executor,
  tenantId: string,
  projectId: string,
  userId: string,
  role: ProjectRole,
): Promise<boolean> {
  const run = async (trx: Executor) => {
    const project = await trx
      .selectFrom('projects')
      .select('id')
      .where('id', '=', projectId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst()
    if (!project) return false
    await trx
      .insertInto('tenant_members')
      .values({ tenant_id: tenantId, user_id: userId, role: 'member' })
      .onConflict((oc) => oc.columns(['tenant_id', 'user_id']).doNothing())
      .execute()
    await trx
      .insertInto('project_members')
      .values({ project_id: projectId, user_id: userId, role })
      .onConflict((oc) => oc.columns(['project_id', 'user_id']).doUpdateSet({ role, updated_at: new Date() }))
      .execute()
    return true
  }
  return db.isTransaction ? run(db) : db.transaction().execute(run)
}

/** Removes a user from a project of `tenantId`; false when they were not a member. */
export async function removeProjectMember(
  db: Executor,
  tenantId: string,
  projectId: string,
  userId: string,
): Promise<boolean> {
  const result = await db
    .deleteFrom('project_members')
    .where('project_id', '=', projectId)
    .where('user_id', '=', userId)
    .where('project_id', 'in', (eb) =>
      eb.selectFrom('projects').select('id').where('tenant_id', '=', tenantId).where('id', '=', projectId),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** The members of a project of `tenantId`, by login. */
export async function listProjectMembers(
  db: Executor,
  tenantId: string,
  projectId: string,
): Promise<ProjectMember[]> {
  return db
    .selectFrom('project_members as pm')
    .innerJoin('projects as p', 'p.id', 'pm.project_id')
    .innerJoin('users as u', 'u.id', 'pm.user_id')
    .select(['u.id as user_id', 'u.login', 'u.name', 'u.avatar_url', 'pm.role'])
    .where('p.tenant_id', '=', tenantId)
    .where('pm.project_id', '=', projectId)
    .orderBy(sql`lower(u.login)`)
    .execute()
}
