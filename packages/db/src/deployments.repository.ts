import type { Executor } from './db.js'
import type { DeploymentRow, DeploymentUpdate, NewDeployment } from './schema.js'

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

/** Records the pull request and wipes the stored token. */
export async function completeDeployment(
  db: Executor,
  id: string,
  result: { branch: string; pr_url: string; pr_number: number },
): Promise<DeploymentRow | undefined> {
  return updateDeployment(db, id, {
    ...result,
    status: 'succeeded',
    finished_at: new Date(),
    encrypted_token: null,
    error_code: null,
    error_status: null,
    error_message: null,
  })
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
