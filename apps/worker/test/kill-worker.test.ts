import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Config, cloneJobId, clonePath } from '@portico/core'
import { findConnection } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { createConnection, openDb, waitFor } from './fixtures/connections.js'

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))

/** Starts the real worker process (`apps/worker/src/index.ts`) and resolves once it consumes its queues. */
async function spawnWorker(
  t: { teardown(fn: () => unknown): void },
  config: Config,
  env: Record<string, string>,
) {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: config.DATABASE_URL,
      REDIS_PREFIX: config.REDIS_PREFIX,
      CLONE_ROOT: config.cloneRoot,
      TOKEN_ENCRYPTION_KEYS: config.TOKEN_ENCRYPTION_KEYS,
      WORKER_QUEUES: 'clone',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  await waitFor(
    async () => (out.includes('worker started') ? true : undefined),
    // Generous: starting tsx and the worker on a loaded machine has taken over 30 s.
    120_000,
    'the worker to start',
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${out.slice(-2000)}`)
  })
  return { child, output: () => out }
}

/** Pids of git processes working under `root` (started by this test's workers). */
async function gitProcessesUnder(root: string): Promise<number[]> {
  const pids: number[] = []
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.startsWith('git\0') && cmdline.includes(root)) pids.push(Number(name))
  }
  return pids
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()))

t.test(
  'kill -9 of the worker mid-clone: the job is redelivered and the re-run finishes from a clean directory',
  async (t) => {
    const { sim, env, tokenOf } = await startTestSimulator(t)
    const config = await testConfig(t, env)
    const db = openDb(t, config)
    t.teardown(async () => {
      // The killed worker's git (its own process group) is an orphan of this test: stop it.
      for (const pid of await gitProcessesUnder(config.cloneRoot)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
    })
    const row = await createConnection(db, config, { token: tokenOf('octocat') })
    const dest = clonePath(config.cloneRoot, row.tenant_id, row.id)
    // Slow every git request so the kill lands mid-clone.
    sim.setLatency(700)
    const workerEnv = { ...env, WORKER_LOCK_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000' }

    const first = await spawnWorker(t, config, workerEnv)
    const { createQueues, createRedis, closeQueues } = await import('@portico/core')
    const redis = createRedis(config.REDIS_URL, 'producer')
    const queues = createQueues(redis, config.REDIS_PREFIX)
    t.teardown(async () => {
      await closeQueues(queues)
      redis.disconnect()
    })
    await queues.clone.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id), attempts: 3 })

    const partial = await waitFor(
      async () => {
        const names = await readdir(path.dirname(dest)).catch(() => [] as string[])
        return names.find((n) => n.includes('.partial-'))
      },
      20_000,
      'the clone to start',
    )
    t.equal((await findConnection(db, row.id))?.status, 'cloning')
    t.ok((await gitProcessesUnder(config.cloneRoot)).length > 0, 'git is running')
    first.child.kill('SIGKILL')
    await exited(first.child)
    t.equal(first.child.signalCode, 'SIGKILL')
    t.equal(
      await queues.clone.getJobState(cloneJobId(row.id)),
      'active',
      'the job is still held by the dead worker',
    )

    sim.setLatency(0)
    const second = await spawnWorker(t, config, workerEnv)
    const done = await waitFor(
      async () => {
        const r = await findConnection(db, row.id)
        return r?.status === 'analyzed' || r?.status === 'failed' ? r : undefined
      },
      30_000,
      'the redelivered clone to finish',
    )
    t.equal(done.status, 'analyzed', done.error_message ?? '')
    t.equal(done.routes_count, 10)
    t.equal(done.components_count, 3)
    // The row is written before BullMQ records the job's completion: wait for both.
    t.equal(
      await waitFor(
        async () => {
          const state = await queues.clone.getJobState(cloneJobId(row.id))
          return state === 'active' ? undefined : state
        },
        10_000,
        'the job to be recorded as finished',
      ),
      'completed',
    )
    t.ok(existsSync(path.join(dest, 'src/server.js')))
    t.notOk(existsSync(path.join(path.dirname(dest), partial)), 'the dead attempt’s partial clone is gone')
    t.same(await readdir(path.dirname(dest)), [row.id])
    t.match(second.output(), /job started/)
    second.child.kill('SIGTERM')
    await exited(second.child)
  },
)
