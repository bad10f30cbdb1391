import { sql } from 'kysely'
import type { Executor } from './db.js'
import type {
  DeploymentCheck,
  DeploymentEtags,
  DeploymentRow,
  DeploymentUpdate,
  NewDeployment,
} from './schema.js'

/** Partial unique index allowing one queued or running deployment per pod. */
export const ONE_DEPLOY_IN_FLIGHT_INDEX = 'deployments_one_in_flight_per_pod'

/**
 * Inserts a queued deployment. A second in-flight deployment of the same pod violates
 * {@link ONE_DEPLOY_IN_FLIGHT_INDEX}; callers map that with `isUniqueViolation`.
 */
export async function insertDeployment(db: Executor, values: NewDeployment): Promise<DeploymentRow> {
  return db.insertInto('deployments').values(values).returningAll().executeTakeFirstOrThrow()
}

/** A deployment by id. */
export async function findDeployment(db: Executor, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The queued or running deployment of a pod, if any. */
export async function findInFlightDeployment(
  db: Executor,
  customer: string,
  env: string,
): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('customer', '=', customer)
    .where('env', '=', env)
    .where('status', 'in', ['queued', 'running'])
    .executeTakeFirst()
}

/** Most recent deployments first, optionally of one customer and/or environment. */
export async function listDeployments(
  db: Executor,
  filter: { customer?: string; env?: string; limit?: number } = {},
): Promise<DeploymentRow[]> {
  let q = db.selectFrom('deployments').selectAll()
  if (filter.customer !== undefined) q = q.where('customer', '=', filter.customer)
  if (filter.env !== undefined) q = q.where('env', '=', filter.env)
  return q
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit ?? 50)
    .execute()
}

/** Applies `changes` and bumps `updated_at`; returns the updated row, or undefined if it is gone. */
export async function updateDeployment(
  db: Executor,
  id: string,
  changes: DeploymentUpdate,
): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({ ...changes, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}

/**
 * Marks an in-flight deployment running (keeping the first `started_at`). Returns undefined
 * when it is gone or already finished, so a redelivered job does nothing.
 */
export async function startDeployment(db: Executor, id: string): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set((eb) => ({
      status: 'running',
      started_at: eb.fn.coalesce('started_at', eb.val(new Date())),
      updated_at: new Date(),
    }))
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .returningAll()
    .executeTakeFirst()
}

/**
 * Records the pull request (stage `pr_open`) and wipes the stored token; older deployments of the
 * same pod whose pull request is still open are marked superseded by this one, in the same
 * transaction: nobody sees the new deploy open while the older one is not yet superseded.
 */
export async function completeDeployment(
  db: Executor,
  id: string,
  result: { branch: string; pr_url: string; pr_number: number },
): Promise<DeploymentRow | undefined> {
  const run = (trx: Executor) => completeDeploymentIn(trx, id, result)
  return db.isTransaction ? run(db) : db.transaction().execute(run)
}

async function completeDeploymentIn(
  db: Executor,
  id: string,
  result: { branch: string; pr_url: string; pr_number: number },
): Promise<DeploymentRow | undefined> {
  const row = await updateDeployment(db, id, {
    ...result,
    status: 'succeeded',
    stage: 'pr_open',
    finished_at: new Date(),
    encrypted_token: null,
    error_code: null,
    error_status: null,
    error_message: null,
  })
  if (row) await supersedeOlderDeployments(db, row)
  return row
}

/**
 * Marks the older deployments of `row`'s pod whose pull request is still open (stage `pr_open`)
 * as superseded by `row` (`superseded_by`); returns their ids. Idempotent.
 */
export async function supersedeOlderDeployments(
  db: Executor,
  row: Pick<DeploymentRow, 'id' | 'customer' | 'env' | 'created_at'>,
): Promise<string[]> {
  const rows = await db
    .updateTable('deployments')
    .set({ superseded_by: row.id, updated_at: new Date() })
    .where('customer', '=', row.customer)
    .where('env', '=', row.env)
    .where('id', '!=', row.id)
    .where('stage', '=', 'pr_open')
    .where('superseded_by', 'is', null)
    .where('created_at', '<=', row.created_at)
    .returning('id')
    .execute()
  return rows.map((r) => r.id)
}

/** The deployment whose pull request is `prNumber` from head branch `branch`, if any. */
export async function findDeploymentByPull(
  db: Executor,
  prNumber: number,
  branch: string,
): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('pr_number', '=', prNumber)
    .where('branch', '=', branch)
    .orderBy('created_at', 'desc')
    .executeTakeFirst()
}

/**
 * `pr_open` → `merged` with GitHub's `merged_at` and `merge_commit_sha`. Returns the row, or
 * undefined when it was not `pr_open` (already merged: a redelivery changes nothing).
 */
export async function markDeploymentMerged(
  db: Executor,
  id: string,
  merge: { merged_at: Date | string; merge_commit_sha: string },
): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({ stage: 'merged', ...merge, updated_at: new Date() })
    .where('id', '=', id)
    .where('stage', '=', 'pr_open')
    .returningAll()
    .executeTakeFirst()
}

/** `pr_open` → `closed` (closed without merging); undefined when it was not `pr_open`. */
export async function markDeploymentClosed(db: Executor, id: string): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({ stage: 'closed', updated_at: new Date() })
    .where('id', '=', id)
    .where('stage', '=', 'pr_open')
    .returningAll()
    .executeTakeFirst()
}

/** Merged deployments waiting for the checks of merge commit `sha`. */
export async function listMergedDeploymentsByCommit(db: Executor, sha: string): Promise<DeploymentRow[]> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('stage', '=', 'merged')
    .where('merge_commit_sha', '=', sha)
    .execute()
}

/**
 * Records the checks seen on a merged deployment's merge commit; with `outcome`, also settles it
 * (`merged` → `applied` with `applied_at`, or `apply_failed`). Only a `merged` row changes, so a
 * repeated evaluation changes nothing; returns the row when it changed.
 */
export async function recordDeploymentChecks(
  db: Executor,
  id: string,
  checks: DeploymentCheck[],
  outcome?: 'applied' | 'apply_failed',
): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({
      checks: JSON.stringify(checks),
      ...(outcome ? { stage: outcome, applied_at: outcome === 'applied' ? new Date() : null } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .where('stage', '=', 'merged')
    .returningAll()
    .executeTakeFirst()
}

/**
 * Deployments the reconciler follows, least recently reconciled first: pull request open, or
 * merged since `mergedSince` (older merges without a verdict stay `merged`: APPLY_TIMEOUT_HOURS)
 * unless their merge commit is lost (`github_etags.commit_lost`).
 */
export async function listDeploymentsToReconcile(
  db: Executor,
  mergedSince: Date,
  limit = 200,
): Promise<DeploymentRow[]> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb('stage', '=', 'pr_open'),
        eb.and([
          eb('stage', '=', 'merged'),
          eb('merged_at', '>=', mergedSince),
          sql<boolean>`not coalesce(github_etags ? 'commit_lost', false)`,
        ]),
      ]),
    )
    .where('pr_number', 'is not', null)
    .orderBy(sql`reconciled_at nulls first`)
    .orderBy('created_at')
    .limit(limit)
    .execute()
}

/** Stores the ETags the reconciler saw and when it looked (not `updated_at`: nothing changed). */
export async function recordReconciliation(db: Executor, id: string, etags: DeploymentEtags): Promise<void> {
  await db
    .updateTable('deployments')
    .set({ github_etags: JSON.stringify(etags), reconciled_at: new Date() })
    .where('id', '=', id)
    .execute()
}

/**
 * Drops the counts of passes in a row a deployment's pull request answered 404
 * (`github_etags.pull_missing`) or its merge commit was unknown (`commit_missing`), and when that
 * run began (`missing_since`), and nothing else: the stored ETags stay those of what was last applied.
 */
export async function clearMissingCounts(db: Executor, id: string): Promise<void> {
  await db
    .updateTable('deployments')
    .set({ github_etags: sql`github_etags - 'pull_missing' - 'commit_missing' - 'missing_since'` })
    .where('id', '=', id)
    .execute()
}

/** Records why a deployment failed (code, HTTP status, message ≤ 500 chars) and wipes the stored token. */
export async function failDeployment(
  db: Executor,
  id: string,
  error: { code: string; status: number; message: string },
): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({
      status: 'failed',
      finished_at: new Date(),
      updated_at: new Date(),
      encrypted_token: null,
      error_code: error.code,
      error_status: error.status,
      error_message: error.message.slice(0, 500),
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .returningAll()
    .executeTakeFirst()
}

/**
 * Queued or running deployments not updated since `before`, oldest first: candidates for the
 * maintenance repair, which checks whether their job still lives before failing them.
 */
export async function listStaleInFlightDeployments(
  db: Executor,
  before: Date,
  limit = 500,
): Promise<DeploymentRow[]> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('status', 'in', ['queued', 'running'])
    .where('updated_at', '<', before)
    .orderBy('updated_at')
    .limit(limit)
    .execute()
}
