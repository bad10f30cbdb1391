import type { Executor } from './db.js'
import type { ProjectRole, ProjectRow, TenantRole } from './schema.js'

/** A project with what a user may do in it: their tenant role and their project role. */
export interface ProjectAccess {
  project: ProjectRow
  tenantRole: TenantRole
  projectRole: ProjectRole | null
}

/** Creates a project in a tenant. */
export async function createProject(
  db: Executor,
  tenantId: string,
  project: { name: string; slug: string },
): Promise<ProjectRow> {
  return db
    .insertInto('projects')
    .values({ tenant_id: tenantId, name: project.name, slug: project.slug })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** Every project of a tenant, by name. */
export async function listProjects(db: Executor, tenantId: string): Promise<ProjectRow[]> {
  return db
    .selectFrom('projects')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .orderBy('id')
    .execute()
}

/** The projects of a tenant a user is a member of, with their role, by name. */
export async function listProjectsOfMember(
  db: Executor,
  tenantId: string,
  userId: string,
): Promise<(ProjectRow & { role: ProjectRole })[]> {
  return db
    .selectFrom('projects')
    .innerJoin('project_members as pm', 'pm.project_id', 'projects.id')
    .selectAll('projects')
    .select('pm.role')
    .where('projects.tenant_id', '=', tenantId)
    .where('pm.user_id', '=', userId)
    .orderBy('projects.name')
    .orderBy('projects.id')
    .execute()
}

/** A project of a tenant, or undefined (also when it belongs to another tenant). */
export async function findProject(
  db: Executor,
  tenantId: string,
  projectId: string,
): Promise<ProjectRow | undefined> {
  return db
    .selectFrom('projects')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', projectId)
    .executeTakeFirst()
}

/**
 * Locks a project's row until `trx` ends, so that changes to its membership take turns: a role
 * check and the write it allows see the same members. False when there is no such project.
 */
export async function lockProject(trx: Executor, projectId: string): Promise<boolean> {
  const row = await trx
    .selectFrom('projects')
    .select('id')
    .where('id', '=', projectId)
    .forUpdate()
    .executeTakeFirst()
  return row !== undefined
}

/**
 * A project and the user's roles, found only through the user's tenant membership: a project of
 * a tenant the user does not belong to is undefined, exactly like an absent one.
 */
export async function findProjectAccess(
  db: Executor,
  projectId: string,
  userId: string,
): Promise<ProjectAccess | undefined> {
  const row = await db
    .selectFrom('projects')
    .innerJoin('tenant_members as tm', (join) =>
      join.onRef('tm.tenant_id', '=', 'projects.tenant_id').on('tm.user_id', '=', userId),
    )
    .leftJoin('project_members as pm', (join) =>
      join.onRef('pm.project_id', '=', 'projects.id').on('pm.user_id', '=', userId),
    )
    .selectAll('projects')
    .select(['tm.role as tenant_role', 'pm.role as project_role'])
    .where('projects.id', '=', projectId)
    .executeTakeFirst()
  if (!row) return undefined
  const { tenant_role, project_role, ...project } = row
  return { project, tenantRole: tenant_role, projectRole: project_role }
}
