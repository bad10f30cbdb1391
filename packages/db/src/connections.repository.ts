import type { Executor } from './db.js'
import type { ConnectionRow, ConnectionStatus, ConnectionUpdate, NewConnection } from './schema.js'

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

/** Columns of a connection's public view: never the encrypted token or the creator. */
export const CONNECTION_VIEW_COLUMNS = [
  'id',
  'project_id',
  'repo_url',
  'status',
  'progress',
  'default_branch',
  'commit_sha',
  'routes_count',
  'components_count',
  'endpoints_count',
  'analysis_summary',
  'error_message',
  'error_code',
  'owner',
  'repo',
  'repo_full_name',
  'github_repo_id',
  'auth_method',
  'installation_id',
  'expires_at',
  'token_expires_at',
  'token_invalid_at',
  'refresh_status',
  'refresh_requested_at',
  'refresh_started_at',
  'refreshed_at',
  'refresh_error_code',
  'refresh_error_message',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof ConnectionRow)[]

/** A connection's public view (see {@link CONNECTION_VIEW_COLUMNS}). */
export type ConnectionView = Pick<ConnectionRow, (typeof CONNECTION_VIEW_COLUMNS)[number]>

/**
 * The project's most recent connection as its public view, whatever its status: the status read
 * a frontend polls, so it reads only what it returns (no token envelope).
 */
export async function findLatestConnectionViewForProject(
  db: Executor,
  tenantId: string,
  projectId: string,
): Promise<ConnectionView | undefined> {
  return db
    .selectFrom('github_connections')
    .select(CONNECTION_VIEW_COLUMNS)
    .where('tenant_id', '=', tenantId)
    .where('project_id', '=', projectId)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst()
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

/** Statuses that end a connection: its token is no longer needed and is wiped with the change. */
const ENDED_STATUSES: ReadonlySet<string> = new Set(['failed', 'expired'])

function withTokenWiped(changes: ConnectionUpdate): ConnectionUpdate {
  return changes.status !== undefined && ENDED_STATUSES.has(changes.status)
    ? { ...changes, encrypted_token: null }
    : changes
}

/** Applies `changes` and bumps `updated_at`; returns the updated row, or undefined if it is gone. */
export async function updateConnection(
  db: Executor,
  id: string,
  changes: ConnectionUpdate,
): Promise<ConnectionRow | undefined> {
  return db
    .updateTable('github_connections')
    .set({ ...withTokenWiped(changes), updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}

/** The project's live connection (any status but failed/expired), if there is one. */
export async function findActiveConnectionForProject(
  db: Executor,
  tenantId: string,
  projectId: string,
): Promise<ConnectionRow | undefined> {
  return db
    .selectFrom('github_connections')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('project_id', '=', projectId)
    .where('status', 'not in', ['failed', 'expired'])
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst()
}

/** Deletes a connection (scoped to its tenant); returns the deleted row, or undefined if none. */
export async function deleteConnection(
  db: Executor,
  id: string,
  tenantId: string,
): Promise<ConnectionRow | undefined> {
  return db
    .deleteFrom('github_connections')
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .returningAll()
    .executeTakeFirst()
}

/**
 * Applies `changes` only while the row is in one of `statuses` (a compare-and-set on status),
 * so a worker never resurrects a row that was deleted, expired or failed behind its back.
 * Returns the updated row, or undefined when the row is gone or in another status.
 */
export async function updateConnectionIfStatus(
  db: Executor,
  id: string,
  statuses: readonly ConnectionStatus[],
  changes: ConnectionUpdate,
): Promise<ConnectionRow | undefined> {
  return db
    .updateTable('github_connections')
    .set({ ...withTokenWiped(changes), updated_at: new Date() })
    .where('id', '=', id)
    .where('status', 'in', [...statuses])
    .returningAll()
    .executeTakeFirst()
}

/**
 * Ends a PAT connection's clone: `failed` with `changes` and the token wiped (with
 * `tokenRejected`, GitHub's 401, also token_status `invalid` via `token_invalid_at`), in one
 * statement that applies only while the row is `cloning` and still holds `envelope`, the token
 * the attempt used. False when it did not apply: the PAT was replaced meanwhile (`PATCH`), and
 * the failure (a 401, a 404 or 403 for that token's access) may not be the new token's.
 */
export async function failCloneForToken(
  db: Executor,
  id: string,
  envelope: string | null,
  changes: Pick<ConnectionUpdate, 'error_message' | 'error_code'>,
  tokenRejected: boolean,
): Promise<boolean> {
  if (envelope === null) return false
  const now = new Date()
  const row = await db
    .updateTable('github_connections')
    .set({
      ...withTokenWiped({
        ...changes,
        status: 'failed',
        progress: 0,
        clone_path: null,
        ...(tokenRejected ? { token_invalid_at: now } : {}),
      }),
      updated_at: now,
    })
    .where('id', '=', id)
    .where('status', '=', 'cloning')
    .where('encrypted_token', '=', envelope)
    .returning('id')
    .executeTakeFirst()
  return row !== undefined
}

/**
 * Connections holding a clone (`cloned`/`analyzed`) whose `expires_at` is at or before `now`,
 * except those with a refresh in flight: it works in the clone directory and lands a new
 * `expires_at` (a refresh no job holds is failed by the repair task, so none waits forever).
 */
export async function listExpiredConnections(db: Executor, now: Date, limit = 500): Promise<ConnectionRow[]> {
  return db
    .selectFrom('github_connections')
    .selectAll()
    .where('status', 'in', ['cloned', 'analyzed'])
    .where('expires_at', '<=', now)
    .where((eb) => eb.or([eb('refresh_status', 'is', null), eb('refresh_status', '=', 'failed')]))
    .orderBy('expires_at')
    .limit(limit)
    .execute()
}

/** Connections still `pending` or `cloning` whose row has not changed since `before`. */
export async function listStaleInFlightConnections(
  db: Executor,
  before: Date,
  limit = 500,
): Promise<ConnectionRow[]> {
  return db
    .selectFrom('github_connections')
    .selectAll()
    .where('status', 'in', ['pending', 'cloning'])
    .where('updated_at', '<', before)
    .orderBy('updated_at')
    .limit(limit)
    .execute()
}

/**
 * Of `ids`, the connections that still hold (or are building) a clone, with their tenant: live
 * statuses, and any connection with a refresh in flight (a refresh may bring a failed or expired
 * connection back to life, and writes a `.partial-` staging directory beside the clone).
 */
export async function findCloneOwners(
  db: Executor,
  ids: readonly string[],
): Promise<Pick<ConnectionRow, 'id' | 'tenant_id' | 'status' | 'expires_at' | 'refresh_status'>[]> {
  if (ids.length === 0) return []
  return db
    .selectFrom('github_connections')
    .select(['id', 'tenant_id', 'status', 'expires_at', 'refresh_status'])
    .where('id', 'in', [...ids])
    .where((eb) =>
      eb.or([
        eb('status', 'in', ['pending', 'cloning', 'cloned', 'analyzed']),
        eb('refresh_status', 'in', ['queued', 'running']),
      ]),
    )
    .execute()
}

/**
 * Follows a rename or transfer GitHub reported (`repository` webhook): every connection to
 * repository `githubRepoId` gets the new canonical `owner/name`. Returns how many rows changed
 * (0 when they already had it: a redelivery changes nothing).
 */
export async function renameConnectionsByRepoId(
  db: Executor,
  githubRepoId: number | string,
  fullName: string,
): Promise<number> {
  const [owner = '', repo = ''] = fullName.split('/')
  const res = await db
    .updateTable('github_connections')
    .set({ repo_full_name: fullName, owner, repo, updated_at: new Date() })
    .where('github_repo_id', '=', String(githubRepoId))
    .where((eb) =>
      eb.or([
        eb('repo_full_name', 'is', null),
        eb('repo_full_name', '!=', fullName),
        eb('owner', '!=', owner),
        eb('repo', '!=', repo),
      ]),
    )
    .executeTakeFirst()
  return Number(res.numUpdatedRows)
}

/**
 * Fails every connection to repository `githubRepoId` with `error` (e.g. REPOSITORY_DELETED) and
 * wipes its token (kept no longer than needed). Rows already failed with that code are left
 * alone; returns how many changed.
 */
export async function failConnectionsByRepoId(
  db: Executor,
  githubRepoId: number | string,
  error: { code: string; message: string },
): Promise<number> {
  const res = await db
    .updateTable('github_connections')
    .set({
      status: 'failed',
      progress: 0,
      encrypted_token: null,
      error_code: error.code,
      error_message: error.message.slice(0, 500),
      // A refresh running meanwhile must not land over this failure (landRefresh needs 'running').
      refresh_status: null,
      updated_at: new Date(),
    })
    .where('github_repo_id', '=', String(githubRepoId))
    .where((eb) => eb.or([eb('status', '!=', 'failed'), eb('error_code', 'is distinct from', error.code)]))
    .executeTakeFirst()
  return Number(res.numUpdatedRows)
}

/**
 * Fails the live App connections of installation `installationId` with `error` (e.g.
 * APP_ACCESS_REVOKED): all of them, or only those to the repositories `githubRepoIds` (an
 * installation that lost some repositories). Connections already ended are left alone, so a
 * delivery processed twice changes nothing twice; returns how many changed.
 */
export async function failAppConnections(
  db: Executor,
  installationId: number,
  error: { code: string; message: string },
  githubRepoIds?: readonly number[],
): Promise<number> {
  if (githubRepoIds !== undefined && githubRepoIds.length === 0) return 0
  // PostgreSQL binds at most 65,535 parameters: a long removal list goes in chunks.
  if (githubRepoIds !== undefined && githubRepoIds.length > 1000) {
    let failed = 0
    for (let i = 0; i < githubRepoIds.length; i += 1000)
      failed += await failAppConnections(db, installationId, error, githubRepoIds.slice(i, i + 1000))
    return failed
  }
  let query = db
    .updateTable('github_connections')
    .set({
      status: 'failed',
      progress: 0,
      error_code: error.code,
      error_message: error.message.slice(0, 500),
      // A refresh running meanwhile must not land over this failure (landRefresh needs 'running').
      refresh_status: null,
      updated_at: new Date(),
    })
    .where('auth_method', '=', 'app')
    .where('installation_id', '=', String(installationId))
    .where('status', 'in', ['pending', 'cloning', 'cloned', 'analyzed'])
  if (githubRepoIds !== undefined) query = query.where('github_repo_id', 'in', githubRepoIds.map(String))
  const res = await query.executeTakeFirst()
  return Number(res.numUpdatedRows)
}
