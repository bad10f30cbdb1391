import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { clonePath } from '@portico/core'
import { deleteConnection, findConnection, updateConnection } from '@portico/db'
import { startTestSimulator } from '@portico/testing'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { WorkerContext } from '../src/lib.js'
import { processors } from '../src/processors/index.js'
import { sweepLocalClones } from '../src/processors/maintenance.processor.js'
import { startWorker } from '../src/runtime.js'
import { createConnection, waitFor, workerContext } from './fixtures/connections.js'

const { env, tokenOf } = await startTestSimulator(t)
const HOUR = 3600_000

async function context(t: Test) {
  return workerContext(t, env)
}

async function withClone(
  ctx: WorkerContext,
  status: 'cloned' | 'analyzed' | 'cloning' | 'failed' | 'expired',
  expiresAt: Date | null,
) {
  const row = await createConnection(ctx.db, ctx.config, { token: tokenOf('octocat') })
  const dir = clonePath(ctx.config.cloneRoot, row.tenant_id, row.id)
  await mkdir(path.join(dir, '.git'), { recursive: true })
  await writeFile(path.join(dir, 'README.md'), 'x')
  await updateConnection(ctx.db, row.id, { status, expires_at: expiresAt })
  return { row, dir }
}

t.test(
  'the local sweep removes expired, ended and orphaned clones and leaves rows to the DB side',
  async (t) => {
    const ctx = await context(t)
    const now = new Date()
    const past = await withClone(ctx, 'analyzed', new Date(now.getTime() - HOUR))
    const live = await withClone(ctx, 'analyzed', new Date(now.getTime() + HOUR))
    const cloning = await withClone(ctx, 'cloning', null)
    // Expired or failed by another host's maintenance, which could not reach this disk.
    const expired = await withClone(ctx, 'expired', null)
    const failed = await withClone(ctx, 'failed', null)
    const deleted = await withClone(ctx, 'analyzed', null)
    await deleteConnection(ctx.db, deleted.row.id, deleted.row.tenant_id)

    t.equal(await sweepLocalClones(ctx, now), 4)
    for (const gone of [past, expired, failed, deleted]) t.notOk(existsSync(gone.dir))
    for (const kept of [live, cloning]) t.ok(existsSync(kept.dir))
    t.equal(
      (await findConnection(ctx.db, past.row.id))?.status,
      'analyzed',
      'the row is left to expire-clones',
    )
    t.equal(await sweepLocalClones(ctx, now), 0, 'idempotent')
  },
)

t.test(
  'a connection with a refresh in flight keeps its clone and staging directory, even ended',
  async (t) => {
    const ctx = await context(t)
    const now = new Date()
    // A failed connection being brought back, and an analysed one past expires_at, both refreshing.
    const reviving = await withClone(ctx, 'failed', null)
    const refreshing = await withClone(ctx, 'analyzed', new Date(now.getTime() - HOUR))
    for (const { row } of [reviving, refreshing]) {
      await updateConnection(ctx.db, row.id, { refresh_status: 'running' })
    }
    const stage = `${refreshing.dir}.partial-abc123`
    await mkdir(stage)
    t.equal(await sweepLocalClones(ctx, now), 0)
    for (const dir of [reviving.dir, refreshing.dir, stage]) t.ok(existsSync(dir))
    // Once the refresh is over, the usual rules apply again.
    await updateConnection(ctx.db, reviving.row.id, { refresh_status: 'failed' })
    await updateConnection(ctx.db, refreshing.row.id, {
      refresh_status: null,
      expires_at: new Date(now.getTime() + HOUR),
    })
    t.equal(await sweepLocalClones(ctx, now), 2, 'the ended clone and the stale staging directory')
    t.notOk(existsSync(reviving.dir))
    t.notOk(existsSync(stage))
    t.ok(existsSync(refreshing.dir))
  },
)

t.test(
  'a worker consuming the clone queue sweeps its CLONE_ROOT periodically; shutdown stops it',
  async (t) => {
    const ctx = await context(t)
    const runtime = await startWorker(
      { ...ctx.config, workerQueues: ['clone'] },
      processors,
      pino({ level: 'silent' }),
      {},
      { localSweepEveryMs: 100 },
    )
    let closed = false
    t.teardown(() => (closed ? undefined : runtime.close()))
    // Made after start-up, so only a later tick of the timer can remove it.
    const orphan = await withClone(ctx, 'failed', null)
    await waitFor(async () => (existsSync(orphan.dir) ? undefined : true), 120_000, 'the periodic sweep')
    await runtime.close()
    closed = true
    const after = await withClone(ctx, 'expired', null)
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.ok(existsSync(after.dir), 'no sweep runs after shutdown')
  },
)

t.test('a worker not consuming the clone queue does not sweep', async (t) => {
  const ctx = await context(t)
  const orphan = await withClone(ctx, 'failed', null)
  const runtime = await startWorker(
    { ...ctx.config, workerQueues: ['deploy'] },
    processors,
    pino({ level: 'silent' }),
    {},
    { localSweepEveryMs: 50 },
  )
  t.teardown(() => runtime.close())
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.ok(existsSync(orphan.dir))
})
