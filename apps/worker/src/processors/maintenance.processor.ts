import { readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import {
  cloneJobId,
  clonePath,
  deployJobId,
  isUuid,
  redactSecrets,
  refreshDedupId,
  removeClone,
  tenantReposPath,
  truncateMessage,
} from '@portico/core'
import {
  failDeployment,
  failRefresh,
  findCloneOwners,
  listExpiredConnections,
  listStaleInFlightConnections,
  listStaleInFlightDeployments,
  listStaleRefreshes,
  pruneWebhookDeliveries,
  rotateStoredTokens,
  updateConnectionIfStatus,
} from '@portico/db'
import type { ProcessorFactory, WorkerContext } from '../context.js'
import { reconcileDeployments } from '../deploy/reconcile-deployments.js'

/** How often the expiry sweep and the stuck-connection repair run. */
export const EXPIRE_EVERY_MS = 3600_000
export const REPAIR_EVERY_MS = 600_000
/** How often every stored token is re-encrypted with the active key (a no-op when all are). */
export const ROTATE_KEYS_EVERY_MS = 24 * 3600_000
/** How often each clone-consuming worker sweeps its own CLONE_ROOT (a local timer, not a job). */
export const LOCAL_SWEEP_EVERY_MS = 10 * 60_000
/** How often, and after how long, stored webhook deliveries (payloads up to 25 MB) are deleted. */
export const PRUNE_DELIVERIES_EVERY_MS = 24 * 3600_000
export const WEBHOOK_DELIVERY_RETENTION_MS = 30 * 24 * 3600_000
/** An in-flight row untouched this long, with no live job, is considered stuck. */
const STALE_AFTER_MS = 2 * 60_000
const LIVE_JOB_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children'])

/**
 * Registers the maintenance schedules. `upsertJobScheduler` is idempotent, so every worker
 * calling it at start-up (and after restarts) leaves exactly one schedule of each.
 */
export async function scheduleMaintenance(ctx: WorkerContext): Promise<void> {
  const queue = ctx.queues.maintenance
  await queue.upsertJobScheduler(
    'expire-clones',
    { every: EXPIRE_EVERY_MS },
    { name: 'expire-clones', data: { task: 'expire-clones' } },
  )
  await queue.upsertJobScheduler(
    'repair-stuck-connections',
    { every: REPAIR_EVERY_MS },
    { name: 'repair-stuck-connections', data: { task: 'repair-stuck-connections' } },
  )
  await queue.upsertJobScheduler(
    'repair-stuck-deployments',
    { every: REPAIR_EVERY_MS },
    { name: 'repair-stuck-deployments', data: { task: 'repair-stuck-deployments' } },
  )
  // Follows deploy pull requests without webhooks (merged, closed, applied by checks).
  await queue.upsertJobScheduler(
    'reconcile-deployments',
    { every: ctx.config.RECONCILE_INTERVAL_SECONDS * 1000 },
    { name: 'reconcile-deployments', data: { task: 'reconcile-deployments' } },
  )
  await queue.upsertJobScheduler(
    'prune-webhook-deliveries',
    { every: PRUNE_DELIVERIES_EVERY_MS },
    { name: 'prune-webhook-deliveries', data: { task: 'prune-webhook-deliveries' } },
  )
  await queue.upsertJobScheduler(
    'rotate-keys',
    { every: ROTATE_KEYS_EVERY_MS },
    { name: 'rotate-keys', data: { task: 'rotate-keys' } },
  )
}

export interface ExpirySweepResult {
  expired: number
  orphansRemoved: number
}

/**
 * Expires clones past `expires_at` (directory removed first, then status `expired`; the row is
 * kept) and removes clone directories that no live connection owns.
 */
export async function expireClones(ctx: WorkerContext, now: Date = new Date()): Promise<ExpirySweepResult> {
  let expired = 0
  for (const row of await listExpiredConnections(ctx.db, now)) {
    await removeClone(clonePath(ctx.config.cloneRoot, row.tenant_id, row.id))
    const updated = await updateConnectionIfStatus(ctx.db, row.id, ['cloned', 'analyzed'], {
      status: 'expired',
      clone_path: null,
    })
    if (updated) expired += 1
  }
  return { expired, orphansRemoved: await removeOrphanClones(ctx, now) }
}

/**
 * The local half of expiry, run by every worker that consumes the clone queue on its own
 * `CLONE_ROOT` (clones live on the host that made them, while the scheduled `expire-clones` job
 * runs on one arbitrary worker): removes directories whose connection is gone, ended
 * (failed/expired) or past `expires_at`. The row's status is left to `expire-clones`.
 */
export async function sweepLocalClones(ctx: WorkerContext, now: Date = new Date()): Promise<number> {
  return removeOrphanClones(ctx, now)
}

/**
 * Starts the periodic local sweep ({@link sweepLocalClones}) every `everyMs`; one sweep at a time.
 * Returns a stop function that clears the timer and waits for a sweep in progress.
 */
export function startLocalCloneSweep(
  ctx: WorkerContext,
  everyMs = LOCAL_SWEEP_EVERY_MS,
): () => Promise<void> {
  let running: Promise<void> | undefined
  const tick = () => {
    if (running) return
    running = sweepLocalClones(ctx)
      .then((removed) => {
        if (removed > 0) ctx.logger.info({ removed }, 'local clone sweep removed directories')
      })
      .catch((err: unknown) =>
        ctx.logger.warn({ err: { message: (err as Error).message } }, 'local clone sweep failed'),
      )
      .finally(() => {
        running = undefined
      })
  }
  const timer = setInterval(tick, everyMs)
  timer.unref()
  tick()
  return async () => {
    clearInterval(timer)
    await running
  }
}

/**
 * Removes everything under `{root}/tenants/*\/repos/` that no pending/cloning/cloned/analyzed row
 * owns, or whose row is past `expires_at`.
 */
async function removeOrphanClones(ctx: WorkerContext, now: Date): Promise<number> {
  const tenantsDir = path.join(ctx.config.cloneRoot, 'tenants')
  const tenants = await readdir(tenantsDir).catch(() => [] as string[])
  let removed = 0
  for (const tenant of tenants) {
    if (!isUuid(tenant)) continue
    const reposDir = tenantReposPath(ctx.config.cloneRoot, tenant)
    const entries = await readdir(reposDir).catch(() => [] as string[])
    const ids = [...new Set(entries.map((e) => e.split('.partial-')[0] ?? '').filter(isUuid))]
    const owners = await findCloneOwners(ctx.db, ids)
    const refreshing = (o: (typeof owners)[number]) =>
      o.refresh_status === 'queued' || o.refresh_status === 'running'
    const live = new Map(
      owners
        .filter(
          (o) => o.tenant_id === tenant && (refreshing(o) || !(o.expires_at !== null && o.expires_at <= now)),
        )
        .map((o) => [o.id, refreshing(o) ? 'refreshing' : o.status]),
    )
    for (const entry of entries) {
      const [id = '', partial] = entry.split('.partial-')
      const status = live.get(id)
      // A partial directory is only legitimate while its clone or refresh may still be running.
      const keep =
        status !== undefined &&
        (partial === undefined || status === 'pending' || status === 'cloning' || status === 'refreshing')
      if (keep) continue
      await rm(path.join(reposDir, entry), { recursive: true, force: true })
      removed += 1
    }
  }
  return removed
}

/**
 * Fails `pending`/`cloning` rows untouched for a while whose clone job is gone (never enqueued,
 * removed, or finished without updating the row), so no row waits forever.
 */
export async function repairStuckConnections(ctx: WorkerContext, now: Date = new Date()): Promise<number> {
  let repaired = 0
  for (const row of await listStaleInFlightConnections(ctx.db, new Date(now.getTime() - STALE_AFTER_MS))) {
    const job = await ctx.queues.clone.getJob(cloneJobId(row.id))
    const state = job ? await job.getState() : 'missing'
    if (LIVE_JOB_STATES.has(state)) continue
    const updated = await updateConnectionIfStatus(ctx.db, row.id, ['pending', 'cloning'], {
      status: 'failed',
      progress: 0,
      clone_path: null,
      error_message:
        'The clone job was lost before it finished. Disconnect and connect the repository again.',
    })
    if (updated) {
      await removeClone(clonePath(ctx.config.cloneRoot, row.tenant_id, row.id))
      repaired += 1
    }
  }
  return repaired
}

/**
 * Fails refreshes marked `queued`/`running` for a while that no job holds any more (BullMQ's
 * deduplication id is free: the job was removed or lost with Redis data), so a connection never
 * claims a refresh nobody runs. The connection itself is left as it was.
 */
export async function repairStuckRefreshes(ctx: WorkerContext, now: Date = new Date()): Promise<number> {
  let repaired = 0
  for (const row of await listStaleRefreshes(ctx.db, new Date(now.getTime() - STALE_AFTER_MS))) {
    if ((await ctx.queues.clone.getDeduplicationJobId(refreshDedupId(row.id))) !== null) continue
    const failed = await failRefresh(
      ctx.db,
      row.id,
      {
        code: 'REFRESH_JOB_LOST',
        message: 'The refresh job was lost before it finished. Refresh again.',
        retrying: false,
      },
      ['queued', 'running'],
    )
    if (failed) {
      ctx.logger.warn({ connectionId: row.id }, 'stuck refresh marked failed')
      repaired += 1
    }
  }
  return repaired
}

/** Code recorded on a deployment whose job ended without settling it. */
export const DEPLOY_JOB_LOST = 'DEPLOY_JOB_LOST'

/**
 * Fails `queued`/`running` deployments untouched for a while whose deploy job is no longer live:
 * missing (removed from Bull Board, lost with Redis data), or failed/completed without settling
 * the row (the database was down through every attempt, the job stalled too often). The row gets
 * `DEPLOY_JOB_LOST` with the job's own (redacted) failure reason when there is one, and its
 * stored token is wiped by `failDeployment`.
 */
export async function repairStuckDeployments(ctx: WorkerContext, now: Date = new Date()): Promise<number> {
  let repaired = 0
  for (const row of await listStaleInFlightDeployments(ctx.db, new Date(now.getTime() - STALE_AFTER_MS))) {
    const job = await ctx.queues.deploy.getJob(deployJobId(row.id))
    const state = job ? await job.getState() : 'missing'
    if (LIVE_JOB_STATES.has(state)) continue
    const reason =
      state === 'missing'
        ? 'The deploy job was lost before it finished (removed, or lost with Redis data).'
        : `The deploy job ended (${state}) without recording an outcome${
            job?.failedReason ? `: ${job.failedReason}` : '.'
          }`
    const failed = await failDeployment(ctx.db, row.id, {
      code: DEPLOY_JOB_LOST,
      status: 500,
      message: truncateMessage(redactSecrets(`${reason} Deploy again.`), 500),
    })
    if (failed) {
      ctx.logger.warn({ deploymentId: row.id, jobState: state }, 'stuck deployment marked failed')
      repaired += 1
    }
  }
  return repaired
}

/** Settles once the schedules of a worker context are in place (or failed to be, which is logged). */
export const maintenanceScheduled = new WeakMap<WorkerContext, Promise<void>>()

/** Runs the periodic housekeeping tasks; schedules them when the worker starts. */
export const maintenanceProcessor: ProcessorFactory<'maintenance'> = (ctx) => {
  const schedule = () =>
    scheduleMaintenance(ctx).catch((err: unknown) =>
      ctx.logger.error({ err: { message: (err as Error).message } }, 'could not schedule maintenance jobs'),
    )
  maintenanceScheduled.set(ctx, schedule())
  // Redis may come back without the schedules (flushed, failed over to an empty replica): every
  // time the worker's connection is ready again, register them again (idempotent).
  ctx.redis.on('ready', () => {
    ctx.logger.info('redis ready again; re-registering maintenance schedules')
    maintenanceScheduled.set(ctx, schedule())
  })
  return async (job) => {
    switch (job.data.task) {
      case 'expire-clones': {
        const result = await expireClones(ctx)
        ctx.logger.info(result, 'expiry sweep done')
        return result
      }
      case 'repair-stuck-connections': {
        const repaired = await repairStuckConnections(ctx)
        if (repaired > 0) ctx.logger.warn({ repaired }, 'stuck connections marked failed')
        const refreshes = await repairStuckRefreshes(ctx)
        return { repaired, refreshes }
      }
      case 'repair-stuck-deployments': {
        const repaired = await repairStuckDeployments(ctx)
        return { repaired }
      }
      case 'reconcile-deployments': {
        const result = await reconcileDeployments(ctx)
        if (result.checked > 0) ctx.logger.info(result, 'deployments reconciled')
        return result
      }
      case 'prune-webhook-deliveries': {
        const pruned = await pruneWebhookDeliveries(
          ctx.db,
          new Date(Date.now() - WEBHOOK_DELIVERY_RETENTION_MS),
        )
        return { pruned }
      }
      case 'rotate-keys': {
        const report = await rotateStoredTokens({
          db: ctx.db,
          redis: ctx.redis,
          queuePrefix: ctx.config.REDIS_PREFIX,
          keyring: ctx.config.keyring,
        })
        ctx.logger.info(
          {
            rotated: {
              github_connections: report.github_connections.rotated,
              deployments: report.deployments.rotated,
              sessions: report.sessions.rotated,
            },
            byKeyId: report.byKeyId,
          },
          'key rotation done',
        )
        return report
      }
      default:
        return { skipped: `unknown task ${String((job.data as { task?: unknown }).task)}` }
    }
  }
}
