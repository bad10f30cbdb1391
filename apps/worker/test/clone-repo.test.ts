import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { cloneJobId, clonePath, metricsText } from '@portico/core'
import { deleteConnection, findConnection } from '@portico/db'
import { defaultSeed } from '@portico/github-sim'
import { startTestSimulator, type Teardown, testConfig } from '@portico/testing'
import type { JobsOptions } from 'bullmq'
import t from 'tap'
import { parseProgressLine } from '../src/clone/git-clone.js'
import { createConnection, openDb, startTestWorker, storeToken, waitFor } from './fixtures/connections.js'

const BIG_REPO_BYTES = 3 * 1024 * 1024
const IDENT_LINES = 100_000
const seed = {
  ...defaultSeed,
  repos: [
    ...(defaultSeed.repos ?? []),
    {
      owner: 'acme',
      name: 'big',
      private: true,
      collaborators: [{ login: 'portico-bot', permission: 'read' as const }],
      files: { 'README.md': '# big\n', 'blob.txt': randomBytes(BIG_REPO_BYTES).toString('base64') },
    },
    { owner: 'acme', name: 'empty', private: true, empty: true, files: {} },
    {
      owner: 'acme',
      name: 'attributes',
      private: true,
      collaborators: [{ login: 'portico-bot', permission: 'read' as const }],
      files: {
        // Checked out with these attributes, each 5-byte line would become 48 bytes.
        '.gitattributes': '* text eol=crlf ident\n',
        'ids.txt': '$Id$\n'.repeat(IDENT_LINES),
        'src/server.js': "const express = require('express')\napp.get('/health', h)\n",
      },
    },
  ],
}
const { sim, env, tokenOf } = await startTestSimulator(t, { seed })
const PAT = tokenOf('octocat')

async function setup(t: Teardown, extraEnv: Record<string, string> = {}) {
  const config = await testConfig(t, { ...env, ...extraEnv })
  const db = openDb(t, config)
  const runtime = await startTestWorker(t, config)
  return { config, db, runtime, queue: runtime.ctx.queues.clone }
}

async function enqueue(
  queue: Awaited<ReturnType<typeof setup>>['queue'],
  id: string,
  opts: JobsOptions = {},
) {
  return queue.add('clone', { connectionId: id }, { jobId: cloneJobId(id), ...opts })
}

async function finalState(queue: Awaited<ReturnType<typeof setup>>['queue'], jobId: string) {
  return waitFor(
    async () => {
      const state = await queue.getJobState(jobId)
      if (state !== 'completed' && state !== 'failed') return undefined
      // Fetched after the state is final, so the job's fields are too.
      const job = await queue.getJob(jobId)
      return job ? { job, state } : undefined
    },
    30_000,
    `job ${jobId} to finish`,
  )
}

t.test('parseProgressLine maps git phases onto 0–100 and reads the bytes received', async (t) => {
  t.same(parseProgressLine('remote: Enumerating objects: 20, done.'), {})
  t.same(parseProgressLine('remote: Counting objects: 100% (20/20), done.'), { percent: 5 })
  t.same(parseProgressLine('Receiving objects:  50% (10/20), 1.50 MiB | 3.00 MiB/s'), {
    percent: 45,
    receivedBytes: 1.5 * 1024 * 1024,
  })
  t.same(parseProgressLine('Resolving deltas: 100% (3/3), done.'), { percent: 92 })
  t.same(parseProgressLine('Cloning into x...'), {})
})

t.test(
  'happy path: pending → cloning → cloned → analyzed with the sample app’s routes and components',
  async (t) => {
    const { config, db, runtime, queue } = await setup(t)
    const row = await createConnection(db, config, { token: PAT })
    const dest = clonePath(config.cloneRoot, row.tenant_id, row.id)
    // Leftovers of a crashed earlier attempt must not survive or mix in.
    await mkdir(`${dest}.partial-dead01`, { recursive: true })
    await mkdir(dest, { recursive: true })
    await writeFile(path.join(dest, 'stale.txt'), 'from a crashed attempt')

    const progress: number[] = []
    for (const w of runtime.workers) w.on('progress', (_job, p) => progress.push(Number(p)))
    const job = await enqueue(queue, row.id)
    const { state } = await finalState(queue, job.id!)
    t.equal(state, 'completed')

    const done = await findConnection(db, row.id)
    t.equal(done?.status, 'analyzed')
    t.equal(done?.progress, 100)
    t.equal(done?.clone_path, dest)
    t.match(done?.commit_sha, /^[0-9a-f]{40}$/)
    t.equal(done?.routes_count, 10, '6 Express + 2 Fastify + 2 FastAPI')
    t.equal(done?.components_count, 3)
    t.equal(done?.endpoints_count, 10)
    t.same(done?.analysis_summary?.frameworks, ['Express', 'FastAPI', 'Fastify', 'React'])
    t.same(done?.analysis_summary?.components.map((c) => c.name).sort(), ['Button', 'Dashboard', 'UserCard'])
    t.ok(
      done?.analysis_summary?.routes.some(
        (r) => r.method === 'DELETE' && r.path === '/users/:id' && r.file === 'src/routes/users.js',
      ),
    )
    t.equal(done?.error_message, null)
    const ttl = (done?.expires_at?.getTime() ?? 0) - Date.now()
    t.ok(
      ttl > (config.CLONE_TTL_HOURS - 1) * 3600_000 && ttl <= config.CLONE_TTL_HOURS * 3600_000,
      'expires after the TTL',
    )

    t.ok(existsSync(path.join(dest, 'src/server.js')), 'the checkout is there')
    t.notOk(existsSync(path.join(dest, 'stale.txt')), 'started from a clean directory')
    t.same(await readdir(path.dirname(dest)), [row.id], 'no partial directories left')
    const gitConfig = await readFile(path.join(dest, '.git/config'), 'utf8')
    t.notOk(gitConfig.includes(PAT), '.git/config holds no token')
    t.notMatch(gitConfig, /extraheader|authorization|x-access-token|@/i, '.git/config holds no credentials')
    t.match(gitConfig, `url = ${sim.url}/acme/sample-app.git`)
    const shallow = await readFile(path.join(dest, '.git/shallow'), 'utf8')
    t.equal(shallow.trim(), done?.commit_sha, 'depth 1')

    const stored = await queue.getJob(job.id!)
    t.same(stored?.data, { connectionId: row.id }, 'job data holds ids only')
    t.equal(stored?.progress, 100)
    t.equal(progress[0], 0)
    t.equal(progress.at(-1), 100)
    t.ok(progress.includes(90), 'clone phase reported before analysis')
    t.same(
      [...progress].sort((a, b) => a - b),
      progress,
      'progress never goes backwards',
    )

    t.test("the worker's metrics: the job, its clone and its analysis; nothing of the API's", async (t) => {
      const { body } = await metricsText()
      const sample = (re: RegExp) => Number(re.exec(body)?.[1] ?? Number.NaN)
      t.ok(sample(/^portico_job_duration_seconds_count\{queue="clone",outcome="completed"\} (\d+)$/m) >= 1)
      t.ok(sample(/^portico_clone_duration_seconds_count (\d+)$/m) >= 1)
      t.ok(sample(/^portico_clone_bytes_total (\d+)$/m) > 0)
      t.ok(sample(/^portico_analysis_duration_seconds_count (\d+)$/m) >= 1)
      t.match(body, /^# TYPE portico_analysis_truncations_total counter$/m)
      t.match(body, /^# TYPE portico_github_requests_total counter$/m)
      for (const family of [
        'portico_http_request_duration_seconds',
        'portico_cache_lookups_total',
        'portico_queue_jobs',
      ])
        t.notMatch(body, new RegExp(`# TYPE ${family} `), `${family} is the API's`)
    })

    t.test('a re-delivered job for an analyzed connection changes nothing', async (t) => {
      const again = await enqueue(queue, row.id, { jobId: `again-${row.id}` })
      const { job: finished } = await finalState(queue, again.id!)
      t.same(finished.returnvalue, { outcome: 'skipped', reason: 'connection is analyzed' })
      t.equal((await findConnection(db, row.id))?.updated_at.getTime(), done?.updated_at.getTime())
    })
  },
)

t.test('a revoked token fails permanently, without retries, with a redacted message', async (t) => {
  const { config, db, queue } = await setup(t)
  const token = `ghp_${randomBytes(18).toString('hex')}`
  sim.addToken('octocat', token, { scopes: ['repo'] })
  const row = await createConnection(db, config, { token })
  sim.revokeToken(token)
  const job = await enqueue(queue, row.id, { attempts: 3, backoff: { type: 'fixed', delay: 10 } })
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 1, 'auth failures are not retried')
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.equal(failed?.encrypted_token, null, "a failed connection's token is wiped")
  t.match(failed?.error_message, /rejected the token/)
  t.equal(failed?.error_code, 'TOKEN_EXPIRED', "GitHub's 401: the token expired or was revoked")
  t.ok(failed?.token_invalid_at, 'token_status "invalid"')
  t.notOk(failed?.error_message?.includes(token))
  t.notOk(finished.failedReason.includes(token))
  t.notOk(existsSync(clonePath(config.cloneRoot, row.tenant_id, row.id)), 'nothing left on disk')
})

t.test('a PAT replaced during the clone: the old token’s failure does not end the connection', async (t) => {
  // GitHub refuses the old token (401), or it cannot see the repository (404: the second review).
  const oldTokens: [string, () => string][] = [
    [
      'revoked (401)',
      () => {
        const old = `ghp_${randomBytes(18).toString('hex')}`
        sim.addToken('octocat', old, { scopes: ['repo'] })
        sim.revokeToken(old)
        return old
      },
    ],
    ['without access (404)', () => tokenOf('hubot')],
  ]
  for (const [what, oldToken] of oldTokens) {
    await t.test(`${what}: the job runs again with the replacement, even on its last attempt`, async (t) => {
      const { config, db, queue } = await setup(t)
      const row = await createConnection(db, config, { token: oldToken() })
      // GitHub answers slowly, so the replacement lands while the first attempt waits for its answer.
      sim.setLatency(1500)
      t.teardown(() => sim.setLatency(0))
      const job = await enqueue(queue, row.id, { attempts: 1 })
      await waitFor(async () => ((await findConnection(db, row.id))?.status === 'cloning' ? true : undefined))
      const replacement = await storeToken(db, config, row.id, PAT)
      sim.setLatency(0)
      const { state } = await finalState(queue, job.id!)
      t.equal(state, 'completed', 'the old token’s failure did not end the connection')
      const done = await findConnection(db, row.id)
      t.equal(done?.status, 'analyzed')
      t.equal(done?.token_invalid_at, null, 'the replacement is not marked invalid')
      t.equal(done?.encrypted_token, replacement, 'the replacement is kept')
    })
  }
})

t.test('a token without access to the repository fails as not found', async (t) => {
  const { config, db, queue } = await setup(t)
  const row = await createConnection(db, config, { token: tokenOf('hubot') })
  const job = await enqueue(queue, row.id, { attempts: 2 })
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 1)
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.error_message, /not found, or the token cannot read it/)
})

t.test('network failures are retried with backoff, then fail', async (t) => {
  // Nothing listens on port 1: every attempt gets "connection refused".
  const { config, db, queue } = await setup(t, { GITHUB_URL: 'http://127.0.0.1:1' })
  const row = await createConnection(db, config, { token: PAT })
  const job = await enqueue(queue, row.id, { attempts: 2, backoff: { type: 'fixed', delay: 200 } })
  const seen = new Set<string>()
  const { job: finished, state } = await waitFor(async () => {
    const r = await findConnection(db, row.id)
    if (r) seen.add(r.status)
    const s = await queue.getJobState(job.id!)
    const j = s === 'failed' ? await queue.getJob(job.id!) : undefined
    return j ? { job: j, state: s } : undefined
  })
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 2, 'retried once')
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.error_message, /Could not reach GitHub/)
  t.ok(failed!.error_message!.length <= 500)
  t.ok(seen.has('pending') || seen.has('cloning'), 'in flight between attempts')
})

t.test('CLONE_MAX_MB: a larger repository is stopped and cleaned up', async (t) => {
  const { config, db, queue } = await setup(t, { CLONE_MAX_MB: '1' })
  const row = await createConnection(db, config, { repo: 'big', token: tokenOf('portico-bot') })
  const job = await enqueue(queue, row.id, { attempts: 3 })
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 1, 'limits are permanent failures')
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.error_message, /larger than 1 MiB \(CLONE_MAX_MB\)/)
  const dir = path.dirname(clonePath(config.cloneRoot, row.tenant_id, row.id))
  t.same(await readdir(dir).catch(() => []), [], 'partial clone removed')
})

t.test('files are checked out as committed: .gitattributes cannot convert or grow them', async (t) => {
  // 500 KB of `$Id$` lines is 4.8 MB once `ident` and CRLF expand them: over a 1 MiB limit.
  const { config, db, queue } = await setup(t, { CLONE_MAX_MB: '1' })
  const row = await createConnection(db, config, { repo: 'attributes', token: tokenOf('portico-bot') })
  const job = await enqueue(queue, row.id)
  const { state } = await finalState(queue, job.id!)
  t.equal(state, 'completed')
  const done = await findConnection(db, row.id)
  t.equal(done?.status, 'analyzed')
  t.equal(done?.routes_count, 1)
  const dest = clonePath(config.cloneRoot, row.tenant_id, row.id)
  const ids = await readFile(path.join(dest, 'ids.txt'), 'utf8')
  t.equal(ids.length, IDENT_LINES * 5, 'not expanded')
  t.ok(ids === '$Id$\n'.repeat(IDENT_LINES), 'byte for byte')
})

t.test('CLONE_MAX_FILES: a tree with more entries is refused before checkout', async (t) => {
  const { config, db, queue } = await setup(t, { CLONE_MAX_FILES: '2' })
  const row = await createConnection(db, config, { token: PAT })
  const job = await enqueue(queue, row.id, { attempts: 3 })
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 1, 'a limit is a permanent failure')
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.error_message, /more than 2 files \(CLONE_MAX_FILES\); it was not checked out/)
  const dir = path.dirname(clonePath(config.cloneRoot, row.tenant_id, row.id))
  t.same(await readdir(dir).catch(() => []), [], 'nothing left on disk')
})

t.test('CLONE_TIMEOUT_SECONDS: a slow clone is stopped and cleaned up', async (t) => {
  const { config, db, queue } = await setup(t, { CLONE_TIMEOUT_SECONDS: '1' })
  const row = await createConnection(db, config, { token: PAT })
  sim.setLatency(1500)
  t.teardown(() => sim.setLatency(0))
  const job = await enqueue(queue, row.id)
  const { state } = await finalState(queue, job.id!)
  sim.setLatency(0)
  t.equal(state, 'failed')
  const failed = await findConnection(db, row.id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.error_message, /longer than 1 s \(CLONE_TIMEOUT_SECONDS\)/)
  const dir = path.dirname(clonePath(config.cloneRoot, row.tenant_id, row.id))
  t.same(await readdir(dir).catch(() => []), [])
})

t.test('deleting the row mid-clone cancels the clone and removes its directory', async (t) => {
  const { config, db, queue } = await setup(t)
  const row = await createConnection(db, config, { token: PAT })
  sim.setLatency(1000)
  t.teardown(() => sim.setLatency(0))
  const job = await enqueue(queue, row.id)
  await waitFor(async () => ((await findConnection(db, row.id))?.status === 'cloning' ? true : undefined))
  await deleteConnection(db, row.id, row.tenant_id)
  const { job: finished, state } = await finalState(queue, job.id!)
  sim.setLatency(0)
  t.equal(state, 'completed')
  t.same(finished.returnvalue, { outcome: 'skipped', reason: 'connection deleted during the clone' })
  const dir = path.dirname(clonePath(config.cloneRoot, row.tenant_id, row.id))
  t.same(await readdir(dir).catch(() => []), [], 'nothing left on disk')
})

t.test('a job for a connection that no longer exists is a no-op', async (t) => {
  const { queue } = await setup(t)
  const id = '00000000-0000-4000-8000-000000000000'
  const job = await enqueue(queue, id)
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'completed')
  t.same(finished.returnvalue, { outcome: 'skipped', reason: 'connection deleted' })
})

t.test('a job without a valid id fails permanently', async (t) => {
  const { queue } = await setup(t)
  const job = await queue.add('clone', { connectionId: '../../etc' }, { attempts: 3 })
  const { job: finished, state } = await finalState(queue, job.id!)
  t.equal(state, 'failed')
  t.equal(finished.attemptsMade, 1)
})

t.test(
  'an empty repository fails at the first attempt with REPOSITORY_EMPTY and no raw git output',
  async (t) => {
    const { config, db, queue } = await setup(t)
    const row = await createConnection(db, config, { repo: 'empty', token: PAT })
    const job = await enqueue(queue, row.id, { attempts: 3, backoff: { type: 'fixed', delay: 10 } })
    const { job: finished, state } = await finalState(queue, job.id!)
    t.equal(state, 'failed')
    t.equal(finished.attemptsMade, 1, 'not retried: retrying cannot add a commit')
    const failed = await findConnection(db, row.id)
    t.equal(failed?.status, 'failed')
    t.equal(failed?.error_code, 'REPOSITORY_EMPTY')
    t.equal(
      failed?.error_message,
      'The repository is empty: it has no commits yet. Push a first commit, then connect again.',
    )
    t.notMatch(failed?.error_message ?? '', /ambiguous|fatal|HEAD|warning/, 'no raw git output')
    t.notMatch(finished.failedReason, /ambiguous|fatal/)
    t.notOk(existsSync(clonePath(config.cloneRoot, row.tenant_id, row.id)), 'nothing left on disk')
  },
)

t.test('a repository renamed after connecting is cloned by id under its current name', async (t) => {
  const { config, db, queue } = await setup(t)
  const repo = (await (
    await fetch(`${sim.apiUrl}/repos/acme/sample-app`, { headers: { authorization: `token ${PAT}` } })
  ).json()) as { id: number }
  const row = await createConnection(db, config, { token: PAT })
  await db
    .updateTable('github_connections')
    .set({ github_repo_id: repo.id, repo_full_name: 'acme/sample-app' })
    .where('id', '=', row.id)
    .execute()
  await sim.renameRepo('acme/sample-app', 'acme/renamed-app')
  t.teardown(() => sim.renameRepo('acme/renamed-app', 'acme/sample-app'))
  const job = await enqueue(queue, row.id, { attempts: 1 })
  const { state } = await finalState(queue, job.id!)
  t.equal(state, 'completed')
  const done = await findConnection(db, row.id)
  t.equal(done?.status, 'analyzed', done?.error_message ?? '')
  t.equal(done?.repo_full_name, 'acme/renamed-app', 'the current name is recorded')
  t.equal(done?.repo, 'renamed-app')
  t.equal(sim.ledger.count({ route: 'GET /repositories/{id}' }) > 0, true, 'looked up by id')
})
