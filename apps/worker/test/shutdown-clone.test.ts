import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { cloneJobId, closeQueues, createQueues, createRedis } from '@portico/core'
import { findConnection } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { createConnection, openDb, startTestWorker, waitFor } from './fixtures/connections.js'

// Issue 10, item 10: SIGTERM during a clone hands the job back; another worker finishes it.
const workerEntry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
const { sim, env, tokenOf } = await startTestSimulator(t)

/**
 * A pass-through proxy to the simulator's git host that holds the first fetch (git-upload-pack
 * POST) open, so a clone is reliably in flight, and tells when it is.
 */
async function holdingProxy(t: { teardown(fn: () => unknown): void }) {
  const target = new URL(sim.url)
  let holding = true
  let onHeld: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    onHeld = resolve
  })
  const server = http.createServer((req, res) => {
    if (holding && req.method === 'POST' && req.url?.endsWith('/git-upload-pack')) {
      holding = false
      onHeld()
      return // never answered: git waits until it is killed
    }
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held }
}

t.test(
  'SIGTERM during a clone: the job returns to the queue and a second worker ends it analyzed',
  async (t) => {
    const proxy = await holdingProxy(t)
    const config = await testConfig(t, { ...env, GITHUB_URL: proxy.url, SHUTDOWN_TIMEOUT_MS: '20000' })
    const db = openDb(t, config)
    const redis = createRedis(config.REDIS_URL, 'producer')
    const queues = createQueues(redis, config.REDIS_PREFIX)
    t.teardown(async () => {
      await closeQueues(queues)
      redis.disconnect()
    })

    const child = spawn(process.execPath, [...process.execArgv, workerEntry], {
      env: {
        ...process.env,
        ...env,
        GITHUB_URL: proxy.url,
        DATABASE_URL: config.DATABASE_URL,
        REDIS_PREFIX: config.REDIS_PREFIX,
        CLONE_ROOT: config.cloneRoot,
        TOKEN_ENCRYPTION_KEYS: config.TOKEN_ENCRYPTION_KEYS,
        SHUTDOWN_TIMEOUT_MS: '20000',
        WORKER_QUEUES: 'clone',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    await waitFor(
      async () => (out.includes('worker started') ? true : undefined),
      120_000, // generous: tsx start-up on a loaded machine
      'the worker to start',
    )

    const row = await createConnection(db, config, { token: tokenOf('octocat') })
    await queues.clone.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id), attempts: 3 })
    await proxy.held
    t.equal((await findConnection(db, row.id))?.status, 'cloning', 'the clone is in flight')

    child.kill('SIGTERM')
    t.equal(await exited, 0, 'the worker exits cleanly')
    t.match(out, /clone handed back: the worker is shutting down/)
    t.notMatch(out, /in-flight jobs did not finish in time/, 'the clone was cancelled, not waited for')
    const job = await queues.clone.getJob(cloneJobId(row.id))
    t.ok(
      ['waiting', 'delayed', 'prioritized'].includes(String(await job?.getState())),
      'the job is back in the queue',
    )
    t.equal(job?.attemptsMade, 0, 'the hand-back used no attempt')
    t.equal((await findConnection(db, row.id))?.status, 'pending')

    await startTestWorker(t, config, ['clone'])
    const done = await waitFor(
      async () => {
        const current = await findConnection(db, row.id)
        return current?.status === 'analyzed' || current?.status === 'failed' ? current : undefined
      },
      60_000,
      'the second worker to finish the clone',
    )
    t.equal(done.status, 'analyzed', done.error_message ?? '')
  },
)
