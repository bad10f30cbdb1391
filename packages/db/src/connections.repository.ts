import type { Executor } from './db.js'
import type { ConnectionRow, ConnectionUpdate, NewConnection } from './schema.js'

/** Name of the partial unique index allowing one live connection per project. */
export const ONE_ACTIVE_CONNECTION_INDEX = 'github_connections_one_active_per_project'

/**
 * Inserts a connection. A second live connection for the same project violates
 * {@link ONE_ACTIVE_CONNECTION_INDEX}; callers map that with `isUniqueViolation`.
 */
export async function insertConnection(db: Executor, values: NewConnection): Promise<ConnectionRow> {
  return db.insertInto('github_connections').values(values).returningAll().executeTakeFirstOrThrow()
}

/** A connection by id, scoped to its tenant when one is given. */
export async function findConnection(
  db: Executor,
  id: string,
  tenantId?: string,
): Promise<ConnectionRow | undefined> {
  let q = db.selectFrom('github_connections').selectAll().where('id', '=', id)
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
  return q.executeTakeFirst()
}

/** The project's most recent connection, whatever its status. */
export async function findLatestConnectionForProject(
  db: Executor,
  tenantId: string,
  projectId: string,
): Promise<ConnectionRow | undefined> {
  return db
    .selectFrom('github_connections')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('project_id', '=', projectId)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst()
}

/** Applies `changes` and bumps `updated_at`; returns the updated row, or undefined if it is gone. */
export async function updateConnection(
  db: Executor,
  id: string,
  changes: ConnectionUpdate,
): Promise<ConnectionRow | undefined> {
  return db
    .updateTable('github_connections')
    .set({ ...changes, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}
