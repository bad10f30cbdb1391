import type { Executor } from './db.js'
import {
  failDeployment,
  findInFlightDeployment,
  insertDeployment,
  ONE_DEPLOY_IN_FLIGHT_INDEX,
} from './deployments.repository.js'
import { isUniqueViolation } from './errors.js'
import type { DeploymentRow, NewDeployment } from './schema.js'

/**
 * An in-flight deployment older than this whose job is gone is treated as abandoned: younger
 * rows may be between their insert and their enqueue.
 */
export const ORPHAN_AFTER_MS = 60_000

/** The part of a BullMQ deploy queue the lifecycle needs (`Queue#getJob`). */
export interface DeployJobLookup {
  getJob(id: string): Promise<{ getState(): Promise<string> } | undefined | null>
}

/**
 * Marks an in-flight deployment whose job no longer exists (lost Redis data, removed from Bull
 * Board) or has already ended as failed with `DEPLOY_ABANDONED` (503). Returns whether it did.
 * Shared by the API (before refusing a new deploy of the pod) and the worker's maintenance.
 */
export async function releaseIfOrphaned(
  db: Executor,
  queue: DeployJobLookup,
  row: DeploymentRow,
  jobId: string,
  now = Date.now(),
): Promise<boolean> {
  if (now - row.created_at.getTime() < ORPHAN_AFTER_MS) return false
  const job = await queue.getJob(jobId)
  const state = job ? await job.getState() : 'missing'
  if (!['missing', 'failed', 'completed', 'unknown'].includes(state)) return false
  const failed = await failDeployment(db, row.id, {
    code: 'DEPLOY_ABANDONED',
    status: 503,
    message: 'The deploy job was lost before it finished',
  })
  return Boolean(failed)
}

/** Outcome of {@link beginDeployment}. */
export type BeginDeployment =
  /** A new queued row: the caller enqueues its job. */
  | { started: true; row: DeploymentRow }
  /** The pod already has a live deployment in flight: `row` is it. */
  | { started: false; row: DeploymentRow }

/**
 * Inserts a queued deployment unless the pod has one in flight (one per pod, enforced by
 * {@link ONE_DEPLOY_IN_FLIGHT_INDEX}). An in-flight row whose job is gone is released first
 * ({@link releaseIfOrphaned}) so a lost job never blocks its pod for good.
 */
export async function beginDeployment(
  db: Executor,
  queue: DeployJobLookup,
  values: NewDeployment & { customer: string; env: string },
  jobIdOf: (deploymentId: string) => string,
): Promise<BeginDeployment> {
  for (let tries = 0; tries < 3; tries++) {
    try {
      return { started: true, row: await insertDeployment(db, values) }
    } catch (err) {
      if (!isUniqueViolation(err, ONE_DEPLOY_IN_FLIGHT_INDEX)) throw err
    }
    const running = await findInFlightDeployment(db, values.customer, values.env)
    if (running && !(await releaseIfOrphaned(db, queue, running, jobIdOf(running.id))))
      return { started: false, row: running }
  }
  // Three lost races in a row: report the newest in-flight row, or fail loudly.
  const running = await findInFlightDeployment(db, values.customer, values.env)
  if (running) return { started: false, row: running }
  throw new Error(`could not start a deployment of ${values.customer}/${values.env}`)
}

/** Whether a request writes the same spec values as an in-flight deployment (a retry, not a change). */
export function sameDeployFields(
  row: Pick<DeploymentRow, 'instance_name' | 'waf_enabled'>,
  fields: { instance_name: string; waf_enabled: boolean },
): boolean {
  return row.instance_name === fields.instance_name && row.waf_enabled === fields.waf_enabled
}
