import { existsSync } from 'node:fs'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { cloneJobId, clonePath, refreshJobOptions } from '@portico/core'
import { findConnection, updateConnection } from '@portico/db'
import { deleteKeys, startTestSimulator } from '@portico/testing'
import t, { type Test } from 'tap'
import type { WorkerContext } from '../src/lib.js'
import {
  EXPIRE_EVERY_MS,
  expireClones,
  maintenanceScheduled,
  PRUNE_DELIVERIES_EVERY_MS,
  REPAIR_EVERY_MS,
  ROTATE_KEYS_EVERY_MS,
  repairStuckConnections,
  repairStuckRefreshes,
  scheduleMaintenance,
} from '../src/processors/maintenance.processor.js'
import {
  createConnection,
  createProject,
  startTestWorker,
  waitFor,
  workerContext,
} from './fixtures/connections.js'

const { env, tokenOf } = await startTestSimulator(t)
const HOUR = 3600_000

async function context(t: Test, extraEnv: Record<string, string> = {}) {
  return workerContext(t, { ...env, ...extraEnv })
}

/** A connection in `status` with a clone directory on disk. */
async function withClone(
  ctx: WorkerContext,
  status: 'cloned' | 'analyzed' | 'cloning',
  expiresAt: Date | null,
) {
  const row = await createConnection(ctx.db, ctx.config, { token: tokenOf('octocat') })
  const dir = clonePath(ctx.config.cloneRoot, row.tenant_id, row.id)
  await mkdir(path.join(dir, '.git'), { recursive: true })
  await writeFile(path.join(dir, 'README.md'), 'x')
  await updateConnection(ctx.db, row.id, { status, expires_at: expiresAt, clone_path: dir })
  return { row, dir }
}

t.test('expiry sweep: clones past expires_at are removed and expired; others stay', async (t) => {
  const ctx = await context(t)
  const now = new Date('2030-01-01T12:00:00Z')
  const old = await withClone(ctx, 'analyzed', new Date(now.getTime() - HOUR))
  const oldCloned = await withClone(ctx, 'cloned', new Date(now.getTime() - 1))
  const fresh = await withClone(ctx, 'analyzed', new Date(now.getTime() + HOUR))
  const inFlight = await withClone(ctx, 'cloning', null)

  const result = await expireClones(ctx, now)
  t.equal(result.expired, 2)
  for (const { row, dir } of [old, oldCloned]) {
    const after = await findConnection(ctx.db, row.id)
    t.equal(after?.status, 'expired', 'row kept, marked expired')
    t.equal(after?.encrypted_token, null, 'the token of an ended connection is wiped')
    t.equal(after?.clone_path, null)
    t.notOk(existsSync(dir), 'directory removed')
  }
  t.equal((await findConnection(ctx.db, fresh.row.id))?.status, 'analyzed')
  t.not(
    (await findConnection(ctx.db, fresh.row.id))?.encrypted_token,
    null,
    'a live connection keeps its token',
  )
  t.ok(existsSync(fresh.dir))
  t.equal((await findConnection(ctx.db, inFlight.row.id))?.status, 'cloning')
  t.ok(existsSync(inFlight.dir))

  const later = await expireClones(ctx, new Date(now.getTime() + 2 * HOUR))
  t.equal(later.expired, 1, 'the fresh one expires when its time comes')
  t.notOk(existsSync(fresh.dir))
  t.equal((await expireClones(ctx, new Date(now.getTime() + 2 * HOUR))).expired, 0, 'idempotent')
})

t.test('expiry sweep: clone directories without a live row are removed', async (t) => {
  const ctx = await context(t)
  const live = await withClone(ctx, 'analyzed', new Date(Date.now() + HOUR))
  const { tenantId } = await createProject(ctx.db)
  const reposDir = path.dirname(live.dir)
  const orphan = clonePath(ctx.config.cloneRoot, tenantId, '11111111-1111-4111-8111-111111111111')
  const failed = await withClone(ctx, 'cloned', null)
  await updateConnection(ctx.db, failed.row.id, { status: 'failed' })
  const stalePartial = `${live.dir}.partial-abc123`
  const junk = path.join(reposDir, 'not-a-clone')
  // A directory under the wrong tenant is not the row's clone.
  const wrongTenant = clonePath(ctx.config.cloneRoot, tenantId, live.row.id)
  for (const dir of [orphan, stalePartial, junk, wrongTenant]) await mkdir(dir, { recursive: true })

  const result = await expireClones(ctx)
  t.equal(result.expired, 0)
  t.equal(result.orphansRemoved, 5)
  t.ok(existsSync(live.dir), 'a live clone stays')
  for (const dir of [orphan, stalePartial, junk, wrongTenant, failed.dir]) t.notOk(existsSync(dir), dir)
  t.same(await readdir(reposDir), [live.row.id])
})

t.test('repair: stale in-flight rows whose job is gone are failed; live jobs are left alone', async (t) => {
  const ctx = await context(t)
  const now = new Date(Date.now() + 10 * 60_000)
  const lost = await withClone(ctx, 'cloning', null)
  const queued = await createConnection(ctx.db, ctx.config, { token: tokenOf('octocat') })
  await ctx.queues.clone.add(
    'clone',
    { connectionId: queued.id },
    { jobId: cloneJobId(queued.id), delay: HOUR },
  )
  const neverQueued = await createConnection(ctx.db, ctx.config, { token: tokenOf('octocat') })

  t.equal(await repairStuckConnections(ctx), 0, 'rows touched recently are not stale')
  t.equal((await findConnection(ctx.db, neverQueued.id))?.status, 'pending')
  t.equal(await repairStuckConnections(ctx, now), 2, 'ten minutes later they are')
  for (const id of [lost.row.id, neverQueued.id]) {
    const repaired = await findConnection(ctx.db, id)
    t.equal(repaired?.status, 'failed')
    t.match(repaired?.error_message, /clone job was lost/)
    t.equal(repaired?.encrypted_token, null, 'the token of a failed connection is wiped')
  }
  t.notOk(existsSync(lost.dir))
  t.equal((await findConnection(ctx.db, queued.id))?.status, 'pending', 'a waiting job keeps its row')
})

t.test(
  'repair: a refresh in flight that no job holds is failed; the connection is left as it was',
  async (t) => {
    const ctx = await context(t)
    const now = new Date(Date.now() + 10 * 60_000)
    const lost = await withClone(ctx, 'analyzed', null)
    const ended = await withClone(ctx, 'analyzed', null)
    // Expired with the PAT a refresh brought (a plain update: the repository's would wipe it).
    await ctx.db
      .updateTable('github_connections')
      .set({ status: 'expired' })
      .where('id', '=', ended.row.id)
      .execute()
    const held = await withClone(ctx, 'analyzed', null)
    for (const { row } of [lost, ended, held]) {
      await updateConnection(ctx.db, row.id, { refresh_status: 'running', commit_sha: 'a'.repeat(40) })
    }
    await ctx.queues.clone.add(
      'clone',
      { connectionId: held.row.id, refresh: true },
      refreshJobOptions(held.row.id, HOUR),
    )
    t.equal(await repairStuckRefreshes(ctx), 0, 'rows touched recently are not stale')
    t.equal(await repairStuckRefreshes(ctx, now), 2, 'ten minutes later they are, unless a job holds them')
    const repaired = await findConnection(ctx.db, lost.row.id)
    t.match(repaired, { status: 'analyzed', commit_sha: 'a'.repeat(40), refresh_status: 'failed' })
    t.equal(repaired?.refresh_error_code, 'REFRESH_JOB_LOST')
    t.ok(repaired?.encrypted_token, 'a live connection keeps its token')
    t.equal((await findConnection(ctx.db, ended.row.id))?.encrypted_token, null, 'an ended one does not')
    t.equal((await findConnection(ctx.db, held.row.id))?.refresh_status, 'running', 'a waiting job keeps it')
  },
)

t.test('expiry sweep: a clone with a refresh in flight is not expired under it', async (t) => {
  const ctx = await context(t)
  const now = new Date('2030-01-01T12:00:00Z')
  const refreshing = await withClone(ctx, 'analyzed', new Date(now.getTime() - HOUR))
  await updateConnection(ctx.db, refreshing.row.id, { refresh_status: 'running' })
  const result = await expireClones(ctx, now)
  t.equal(result.expired, 0)
  t.ok(existsSync(refreshing.dir))
  t.equal((await findConnection(ctx.db, refreshing.row.id))?.status, 'analyzed')
  await updateConnection(ctx.db, refreshing.row.id, { refresh_status: 'failed' })
  t.equal((await expireClones(ctx, now)).expired, 1, 'after a failed refresh it expires as usual')
})

t.test('the worker schedules the sweeps once, however often it starts', async (t) => {
  const ctx = await context(t)
  await scheduleMaintenance(ctx)
  await scheduleMaintenance(ctx)
  const first = await startTestWorker(t, ctx.config, ['maintenance'])
  const second = await startTestWorker(t, ctx.config, ['maintenance'])
  const schedulers = await waitFor(async () => {
    const list = await ctx.queues.maintenance.getJobSchedulers()
    return list.length === 6 ? list : undefined
  })
  t.same(schedulers.map((s) => [s.key, s.every]).sort(), [
    ['expire-clones', EXPIRE_EVERY_MS],
    ['prune-webhook-deliveries', PRUNE_DELIVERIES_EVERY_MS],
    ['reconcile-deployments', ctx.config.RECONCILE_INTERVAL_SECONDS * 1000],
    ['repair-stuck-connections', REPAIR_EVERY_MS],
    ['repair-stuck-deployments', REPAIR_EVERY_MS],
    ['rotate-keys', ROTATE_KEYS_EVERY_MS],
  ])
  await Promise.all([maintenanceScheduled.get(first.ctx), maintenanceScheduled.get(second.ctx)])
  t.equal(await ctx.queues.maintenance.getJobSchedulersCount(), 6)
})

t.test('a maintenance job run by the worker expires due clones', async (t) => {
  const ctx = await context(t)
  const due = await withClone(ctx, 'analyzed', new Date(Date.now() - 1000))
  const runtime = await startTestWorker(t, ctx.config, ['maintenance'])
  await maintenanceScheduled.get(runtime.ctx)
  const job = await ctx.queues.maintenance.add('expire-clones', { task: 'expire-clones' })
  await waitFor(async () =>
    (await ctx.queues.maintenance.getJobState(job.id!)) === 'completed' ? true : undefined,
  )
  t.equal((await findConnection(ctx.db, due.row.id))?.status, 'expired')
  t.notOk(existsSync(due.dir))
})

t.test('schedules come back after Redis loses them and the connection is ready again', async (t) => {
  const ctx = await context(t)
  const runtime = await startTestWorker(t, ctx.config, ['maintenance'])
  await maintenanceScheduled.get(runtime.ctx)
  t.equal(await ctx.queues.maintenance.getJobSchedulersCount(), 6)
  // Only this file's prefix is deleted: other test runs share the Redis.
  await deleteKeys(ctx.config.REDIS_URL, ctx.config.REDIS_PREFIX)
  t.equal(await ctx.queues.maintenance.getJobSchedulersCount(), 0, 'the schedules are gone')
  const ready = new Promise<void>((resolve) => runtime.ctx.redis.once('ready', () => resolve()))
  runtime.ctx.redis.disconnect(true) // a failover: the connection drops and comes back
  await ready
  await waitFor(async () => ((await ctx.queues.maintenance.getJobSchedulersCount()) === 6 ? true : undefined))
  t.pass('all six schedules are registered again')
})
