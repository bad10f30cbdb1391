import { type CloneJobData, refreshJobOptions } from '@portico/core'
import type { Executor } from './db.js'
import type { ConnectionRow, ConnectionStatus, ConnectionUpdate, RefreshStatus } from './schema.js'

/** A token expiring within this many ms shows `token_status: "expiring"` (issue 14: 7 days). */
export const TOKEN_EXPIRING_WITHIN_MS = 7 * 24 * 3600_000

export type TokenStatus = 'valid' | 'expiring' | 'expired' | 'invalid'

/**
 * A connection's token as a person should read it:
 * `invalid` once a clone or refresh met GitHub's 401 (`token_invalid_at`, cleared when the PAT is
 * replaced); otherwise by `token_expires_at` (GitHub's `github-authentication-token-expiration`
 * header, recorded at connect/replace): `expired` at or after it, `expiring` within
 * {@link TOKEN_EXPIRING_WITHIN_MS}, else `valid` (also when GitHub sent no expiry: classic PATs
 * without one never expire).
 */
export function tokenStatus(
  row: Pick<ConnectionRow, 'token_expires_at' | 'token_invalid_at'>,
  now = new Date(),
): TokenStatus {
  if (row.token_invalid_at !== null) return 'invalid'
  if (row.token_expires_at === null) return 'valid'
  const left = new Date(row.token_expires_at).getTime() - now.getTime()
  if (left <= 0) return 'expired'
  return left <= TOKEN_EXPIRING_WITHIN_MS ? 'expiring' : 'valid'
}

/**
 * Statuses a refresh may start from: a clone that is there (`cloned`, `analyzed`), or one that
 * ended (`failed`, `expired`) and may come back to life. `pending`/`cloning` are already fetching.
 */
export const REFRESHABLE_STATUSES: readonly ConnectionStatus[] = ['cloned', 'analyzed', 'failed', 'expired']

/** Statuses whose stored token is wiped: an ended connection keeps no token it does not use. */
const ENDED: readonly ConnectionStatus[] = ['failed', 'expired']

/**
 * Marks a refresh `queued` unless one is already in flight. Returns the row after the change, or
 * `undefined` when nothing changed (gone, not refreshable, or a refresh is queued or running).
 */
export async function markRefreshQueued(db: Executor, id: string): Promise<ConnectionRow | undefined> {
  return db
    .updateTable('github_connections')
    .set({
      refresh_status: 'queued',
      refresh_requested_at: new Date(),
      refresh_error_code: null,
      refresh_error_message: null,
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .where('status', 'in', [...REFRESHABLE_STATUSES])
    .where((eb) => eb.or([eb('refresh_status', 'is', null), eb('refresh_status', '=', 'failed')]))
    .returningAll()
    .executeTakeFirst()
}

/** The worker takes the refresh: `running` (whatever request queued it; BullMQ runs one at a time). */
export async function markRefreshRunning(db: Executor, id: string): Promise<ConnectionRow | undefined> {
  return db
    .updateTable('github_connections')
    .set({ refresh_status: 'running', refresh_started_at: new Date(), updated_at: new Date() })
    .where('id', '=', id)
    .where('status', 'in', [...REFRESHABLE_STATUSES])
    .returningAll()
    .executeTakeFirst()
}

/**
 * Lands a finished refresh in one update, so readers see the old analysis or the new one, never
 * a mix: the connection becomes `analyzed` with the new commit, counts and summary, and the
 * refresh bookkeeping is cleared. Only while this refresh is still `running` (a DELETE wins).
 * May throw a unique violation of the one-live-connection index when an ended connection would
 * come back to life beside a newer live one.
 */
export async function landRefresh(
  db: Executor,
  id: string,
  changes: Pick<
    ConnectionUpdate,
    | 'commit_sha'
    | 'routes_count'
    | 'components_count'
    | 'endpoints_count'
    | 'analysis_summary'
    | 'clone_path'
    | 'expires_at'
    | 'default_branch'
  >,
): Promise<ConnectionRow | undefined> {
  const now = new Date()
  return db
    .updateTable('github_connections')
    .set({
      ...changes,
      status: 'analyzed',
      progress: 100,
      error_message: null,
      error_code: null,
      token_invalid_at: null,
      refresh_status: null,
      refresh_error_code: null,
      refresh_error_message: null,
      refreshed_at: now,
      updated_at: now,
    })
    .where('id', '=', id)
    .where('refresh_status', '=', 'running')
    .returningAll()
    .executeTakeFirst()
}

/**
 * Records a refresh that did not land; the connection's status and analysis are left as they
 * were. `retrying` puts it back to `queued` (BullMQ's backoff runs it again); otherwise `failed`.
 * `usedToken` (a PAT connection's envelope the refresh ran with) guards the whole update: it applies
 * only while the row still holds that token, and is undefined when the PAT was replaced during the
 * refresh (the failure may not be the new token's; see requeueRefresh). `tokenRejected` (GitHub's
 * 401) also sets `token_invalid_at`. An ended connection's token is wiped again (it was only
 * stored for this refresh).
 */
export async function failRefresh(
  db: Executor,
  id: string,
  failure: {
    code: string
    message: string
    retrying: boolean
    usedToken?: string | null
    tokenRejected?: boolean
  },
  from: readonly RefreshStatus[] = ['running'],
): Promise<ConnectionRow | undefined> {
  const now = new Date()
  return db
    .updateTable('github_connections')
    .set((eb) => ({
      refresh_status: failure.retrying ? 'queued' : 'failed',
      refresh_error_code: failure.code,
      refresh_error_message: failure.message,
      ...(failure.tokenRejected ? { token_invalid_at: now } : {}),
      ...(failure.retrying
        ? {}
        : {
            encrypted_token: eb
              .case()
              .when('status', 'in', [...ENDED])
              .then(null)
              .else(eb.ref('encrypted_token'))
              .end(),
          }),
      updated_at: now,
    }))
    .where('id', '=', id)
    .where('refresh_status', 'in', [...from])
    .$if(typeof failure.usedToken === 'string', (qb) =>
      qb.where('encrypted_token', '=', failure.usedToken ?? null),
    )
    .returningAll()
    .executeTakeFirst()
}

/** Connections with a refresh `queued`/`running` whose row has not changed since `before`. */
export async function listStaleRefreshes(db: Executor, before: Date, limit = 500): Promise<ConnectionRow[]> {
  return db
    .selectFrom('github_connections')
    .selectAll()
    .where('refresh_status', 'in', ['queued', 'running'])
    .where('updated_at', '<', before)
    .orderBy('updated_at')
    .limit(limit)
    .execute()
}

/**
 * Puts an interrupted refresh (worker shutdown, a PAT replaced during it) back to `queued` for
 * the job's next run. False when the row is gone or no longer refreshing.
 */
export async function requeueRefresh(db: Executor, id: string): Promise<boolean> {
  const row = await db
    .updateTable('github_connections')
    .set({ refresh_status: 'queued', updated_at: new Date() })
    .where('id', '=', id)
    .where('refresh_status', '=', 'running')
    .returning('id')
    .executeTakeFirst()
  return row !== undefined
}

/** What {@link requestConnectionRefresh} needs: the database and the `clone` queue. */
export interface RefreshDeps {
  db: Executor
  /** Adds a `clone` job (the API passes its fail-fast `enqueue`, the worker `queues.clone.add`). */
  enqueue: (data: CloneJobData, opts: ReturnType<typeof refreshJobOptions>) => Promise<unknown>
  /** The job holding a deduplication id (BullMQ `Queue.getDeduplicationJobId`), to re-enqueue a lost one. */
  deduplicatedJobId: (dedupId: string) => Promise<string | null>
}

export type RefreshRequest =
  | { outcome: 'queued'; row: ConnectionRow }
  | { outcome: 'in_flight'; row: ConnectionRow }
  | { outcome: 'not_refreshable'; row: ConnectionRow | undefined }

/**
 * Requests a refresh of one connection: fetch its default branch's latest commit and re-analyse,
 * the previous clone and analysis staying visible until the new ones land. At most one refresh
 * per connection is in flight: a request while one is queued or running returns it
 * (`in_flight`) — and, with `debounceMs`, lets BullMQ queue one follow-up if the running one has
 * already fetched. A burst of calls with `debounceMs` (a push webhook: pass e.g. 10_000) makes one
 * refresh, run `debounceMs` after the first call. A refresh marked in flight whose job is gone
 * (Redis lost it) is enqueued again.
 *
 * `not_refreshable`: the connection is gone or still `pending`/`cloning` (that clone already
 * fetches the newest commit). Token checks (none stored, rejected) are the caller's.
 * @throws whatever `enqueue` throws (the API's 503 QUEUE_UNAVAILABLE); the row is then marked as
 *   a failed refresh so it does not claim a refresh nobody runs.
 */
export async function requestConnectionRefresh(
  deps: RefreshDeps,
  connectionId: string,
  opts: { debounceMs?: number; requestId?: string } = {},
): Promise<RefreshRequest> {
  const data: CloneJobData = {
    connectionId,
    refresh: true,
    ...(opts.requestId ? { requestId: opts.requestId } : {}),
  }
  const options = refreshJobOptions(connectionId, opts.debounceMs)
  // Twice at most: a refresh that lands between the two reads below leaves nothing in flight.
  for (let round = 0; ; round++) {
    const queued = await markRefreshQueued(deps.db, connectionId)
    if (queued) {
      try {
        await deps.enqueue(data, options)
      } catch (err) {
        // As any refresh that ends failed: an ended connection keeps no token (a PAT just sent
        // with this refresh is not kept for a job that will never run).
        await failRefresh(
          deps.db,
          connectionId,
          {
            code: 'QUEUE_UNAVAILABLE',
            message: 'The refresh could not be queued. Try again shortly.',
            retrying: false,
          },
          ['queued'],
        )
        throw err
      }
      return { outcome: 'queued', row: queued }
    }
    const row = await findRow(deps.db, connectionId)
    if (!row || !REFRESHABLE_STATUSES.includes(row.status)) return { outcome: 'not_refreshable', row }
    const inFlight = row.refresh_status === 'queued' || row.refresh_status === 'running'
    if (!inFlight && round === 0) continue
    if (row.refresh_status === 'running' && (opts.debounceMs ?? 0) > 0) {
      // A push during a running refresh: BullMQ keeps one follow-up job (keepLastIfActive).
      await deps.enqueue(data, options)
    } else if ((await deps.deduplicatedJobId(options.deduplication.id)) === null) {
      // Marked in flight but no job holds the id: it was lost (Redis flushed, job removed). Again.
      await deps.enqueue(data, options)
    }
    return { outcome: 'in_flight', row }
  }
}

function findRow(db: Executor, id: string): Promise<ConnectionRow | undefined> {
  return db.selectFrom('github_connections').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Default debounce of {@link refreshConnectionsOfRepository}: pushes within it make one refresh. */
export const PUSH_REFRESH_DEBOUNCE_MS = 10_000

/** At most this many connections are refreshed for one push (the most recently active first). */
export const MAX_REFRESHES_PER_PUSH = 50

/**
 * What a `push` webhook to a repository's default branch does: a debounced refresh of every
 * connection of that repository (by GitHub's repository id, so renames do not matter) that can be
 * refreshed without a person — a stored token GitHub has not rejected, and a clone that is there
 * (`cloned`/`analyzed`; ended connections wait for someone to bring them back with a PAT).
 * The caller checks that the push is to the default branch (`ref === "refs/heads/" +
 * repository.default_branch`, https://docs.github.com/en/webhooks/webhook-events-and-payloads#push).
 * @returns each connection's {@link RefreshRequest} outcome, by connection id.
 */
export async function refreshConnectionsOfRepository(
  deps: RefreshDeps,
  githubRepoId: number,
  opts: { debounceMs?: number } = {},
): Promise<{ connectionId: string; outcome: RefreshRequest['outcome'] }[]> {
  const rows = await deps.db
    .selectFrom('github_connections')
    .select('id')
    .where('github_repo_id', '=', String(githubRepoId))
    .where('status', 'in', ['cloned', 'analyzed'])
    // A PAT connection needs its stored token; an App connection mints one per job.
    .where((eb) => eb.or([eb('encrypted_token', 'is not', null), eb('auth_method', '=', 'app')]))
    .where('token_invalid_at', 'is', null)
    // One push must not queue unbounded work (a public repository connected by many projects).
    .orderBy('updated_at', 'desc')
    .limit(MAX_REFRESHES_PER_PUSH)
    .execute()
  const results: { connectionId: string; outcome: RefreshRequest['outcome'] }[] = []
  for (const { id } of rows) {
    const { outcome } = await requestConnectionRefresh(deps, id, {
      debounceMs: opts.debounceMs ?? PUSH_REFRESH_DEBOUNCE_MS,
    })
    results.push({ connectionId: id, outcome })
  }
  return results
}
