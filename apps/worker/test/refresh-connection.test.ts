// The refresh job (queue `clone`, `{ connectionId, refresh: true }`) with the real worker runtime:
// shallow fetch into the existing clone, staged tree, atomic landing; debounced requests.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { cloneJobId, clonePath, refreshDedupId } from '@portico/core'
import {
  failAppConnections,
  failConnectionsByRepoId,
  findConnection,
  landRefresh,
  markRefreshRunning,
  type RefreshDeps,
  refreshConnectionsOfRepository,
  requestConnectionRefresh,
} from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t, { type Test } from 'tap'
import { createConnection, openDb, startTestWorker, storeToken, waitFor } from './fixtures/connections.js'

const run = promisify(execFile)
const { sim, env, tokenOf } = await startTestSimulator(t)
const PAT = tokenOf('octocat')

async function setup(t: Test) {
  const config = await testConfig(t, env)
  const db = openDb(t, config)
  const runtime = await startTestWorker(t, config)
  const queue = runtime.ctx.queues.clone
  const deps: RefreshDeps = {
    db,
    enqueue: (data, opts) => queue.add('clone', data, opts),
    deduplicatedJobId: (id) => queue.getDeduplicationJobId(id),
  }
  // A first clone, analysed.
  const row = await createConnection(db, config, { token: PAT })
  await queue.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id) })
  const analyzed = await waitFor(async () => {
    const r = await findConnection(db, row.id)
    return r?.status === 'analyzed' || r?.status === 'failed' ? r : undefined
  })
  t.equal(analyzed.status, 'analyzed', analyzed.error_message ?? '')
  return { config, db, queue, deps, row: analyzed, dest: clonePath(config.cloneRoot, row.tenant_id, row.id) }
}

let pushes = 0
async function push(): Promise<string> {
  pushes += 1
  const file = `src/routes/extra${pushes}.js`
  const body = `import { Router } from 'express'\nconst router = Router()\nrouter.get('/extra${pushes}', (req, res) => res.end())\nexport { router }\n`
  const res = await fetch(`${sim.apiUrl}/repos/acme/sample-app/contents/${file}`, {
    method: 'PUT',
    headers: { authorization: `token ${PAT}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: `add ${file}`, content: Buffer.from(body).toString('base64') }),
  })
  if (res.status !== 201) throw new Error(`push failed: ${res.status}`)
  return ((await res.json()) as { commit: { sha: string } }).commit.sha
}

const landed = (db: Awaited<ReturnType<typeof setup>>['db'], id: string) =>
  waitFor(async () => {
    const r = await findConnection(db, id)
    return r && r.refresh_status !== 'queued' && r.refresh_status !== 'running' ? r : undefined
  })

t.test(
  'refresh reuses the clone: fetch, staged tree, one landing; the clone is a clean git checkout',
  async (t) => {
    const { db, deps, row, dest } = await setup(t)
    const sha = await push()
    const res = await requestConnectionRefresh(deps, row.id)
    t.equal(res.outcome, 'queued')
    const done = await landed(db, row.id)
    t.equal(done.refresh_status, null, done.refresh_error_message ?? '')
    t.equal(done.commit_sha, sha)
    t.equal(done.status, 'analyzed')
    t.equal(done.routes_count, row.routes_count + 1)
    t.ok(done.refreshed_at)
    t.equal(done.clone_path, dest)
    const head = await run('git', ['rev-parse', 'HEAD'], { cwd: dest })
    t.equal(head.stdout.trim(), sha, 'HEAD is the new commit')
    const status = await run('git', ['status', '--porcelain'], { cwd: dest })
    t.equal(status.stdout, '', 'working tree and index agree with HEAD')
    t.ok(existsSync(path.join(dest, `src/routes/extra${pushes}.js`)))
    const siblings = await readdir(path.dirname(dest))
    t.same(siblings, [path.basename(dest)], 'no staging directory left')
  },
)

t.test('a burst of debounced requests makes one refresh', async (t) => {
  const { db, deps, queue, row } = await setup(t)
  const sha = await push()
  const results = await Promise.all(
    Array.from({ length: 5 }, () => requestConnectionRefresh(deps, row.id, { debounceMs: 1000 })),
  )
  t.equal(results.filter((r) => r.outcome === 'queued').length, 1, 'one request queues it')
  t.equal(results.filter((r) => r.outcome === 'in_flight').length, 4, 'the others join it')
  const jobs = (await queue.getJobs(['delayed', 'waiting', 'active'])).filter(
    (j) => j?.data.refresh === true && j.data.connectionId === row.id,
  )
  t.equal(jobs.length, 1, 'one job')
  t.equal(await queue.getDeduplicationJobId(refreshDedupId(row.id)), jobs[0]?.id)
  const done = await landed(db, row.id)
  t.equal(done.commit_sha, sha)
  t.equal(done.refresh_status, null)
})

t.test('a PAT replaced during the refresh is not marked invalid by the old one’s 401', async (t) => {
  const { config, db, deps, row } = await setup(t)
  const old = `ghp_replaced${Date.now().toString(36)}`.padEnd(40, '0')
  sim.addToken('octocat', old, { scopes: ['repo'] })
  await storeToken(db, config, row.id, old)
  sim.revokeToken(old)
  const sha = await push()
  // GitHub answers slowly, so the replacement lands while the first attempt waits for its 401.
  sim.setLatency(1500)
  t.teardown(() => sim.setLatency(0))
  await requestConnectionRefresh(deps, row.id)
  await waitFor(async () =>
    (await findConnection(db, row.id))?.refresh_status === 'running' ? true : undefined,
  )
  const replacement = await storeToken(db, config, row.id, PAT)
  sim.setLatency(0)
  const done = await landed(db, row.id)
  t.equal(done.refresh_status, null, 'the retry with the replacement landed')
  t.equal(done.commit_sha, sha)
  t.equal(done.token_invalid_at, null, 'the replacement is not marked invalid')
  t.equal(done.encrypted_token, replacement)
})

t.test('a revoked token: the refresh fails with TOKEN_EXPIRED, the analysis stays', async (t) => {
  const { config, db, deps, row } = await setup(t)
  const token = `ghp_revoked${Date.now().toString(36)}`.padEnd(40, '0')
  sim.addToken('octocat', token, { scopes: ['repo'] })
  await storeToken(db, config, row.id, token)
  sim.revokeToken(token)
  await push()
  await requestConnectionRefresh(deps, row.id)
  const done = await landed(db, row.id)
  t.equal(done.refresh_status, 'failed')
  t.equal(done.refresh_error_code, 'TOKEN_EXPIRED')
  t.ok(done.token_invalid_at)
  t.equal(done.status, 'analyzed')
  t.equal(done.commit_sha, row.commit_sha, 'the previous analysis stays')
  t.notOk(done.refresh_error_message?.includes(token))
  t.ok(done.encrypted_token, 'a live connection keeps its token (to be replaced)')
})

t.test(
  'push webhook entry point: refreshConnectionsOfRepository by GitHub repository id, debounced',
  async (t) => {
    const { db, deps, queue, row } = await setup(t)
    await db
      .updateTable('github_connections')
      .set({ github_repo_id: 700002 })
      .where('id', '=', row.id)
      .execute()
    const sha = await push()
    const burst = await Promise.all(
      Array.from({ length: 3 }, () => refreshConnectionsOfRepository(deps, 700002, { debounceMs: 500 })),
    )
    t.same(
      burst.flat().map((r) => r.connectionId),
      [row.id, row.id, row.id],
    )
    t.equal((await queue.getJobs(['delayed', 'waiting', 'active'])).filter((j) => j?.data.refresh).length, 1)
    t.same(await refreshConnectionsOfRepository(deps, 999_999), [], 'another repository: nothing')
    const done = await landed(db, row.id)
    t.equal(done.commit_sha, sha)
  },
)

t.test('deleting the row during a refresh cancels it and leaves nothing on disk', async (t) => {
  const { db, deps, queue, row, dest } = await setup(t)
  await push()
  sim.setLatency(1500)
  t.teardown(() => sim.setLatency(0))
  await requestConnectionRefresh(deps, row.id)
  await waitFor(async () =>
    (await findConnection(db, row.id))?.refresh_status === 'running' ? true : undefined,
  )
  await db.deleteFrom('github_connections').where('id', '=', row.id).execute()
  await waitFor(async () =>
    (await queue.getDeduplicationJobId(refreshDedupId(row.id))) === null ? true : undefined,
  )
  // The sweep removes a deleted connection's clone; the refresh removes its own staging.
  const left = (await readdir(path.dirname(dest)).catch(() => [] as string[])).filter((n) =>
    n.includes('.partial-'),
  )
  t.same(left, [], 'no staging directory left')
  const jobs = await queue.getJobs(['completed', 'failed'])
  const job = jobs.find((j) => j?.data.refresh === true && j.data.connectionId === row.id)
  t.equal(await job?.getState(), 'completed', 'skipped, not failed')
  t.same(job?.returnvalue, { outcome: 'skipped', reason: 'connection deleted during the refresh' })
})

t.test(
  'a connection failed by a webhook while its refresh runs is not brought back by that refresh',
  async (t) => {
    const config = await testConfig(t, env)
    const db = openDb(t, config)
    const row = await createConnection(db, config, { token: PAT })
    await db
      .updateTable('github_connections')
      .set({
        status: 'analyzed',
        github_repo_id: 987654,
        auth_method: 'app',
        installation_id: 4242,
        encrypted_token: null,
      })
      .where('id', '=', row.id)
      .execute()
    t.ok(await markRefreshRunning(db, row.id), 'the refresh runs')
    t.equal(await failAppConnections(db, 4242, { code: 'APP_ACCESS_REVOKED', message: 'revoked' }), 1)
    t.notOk(await landRefresh(db, row.id, { commit_sha: 'a'.repeat(40) }), 'the refresh does not land')
    t.match(await findConnection(db, row.id), {
      status: 'failed',
      error_code: 'APP_ACCESS_REVOKED',
      commit_sha: null,
    })

    const other = await createConnection(db, config, { token: PAT })
    await db
      .updateTable('github_connections')
      .set({ status: 'analyzed', github_repo_id: 987655 })
      .where('id', '=', other.id)
      .execute()
    t.ok(await markRefreshRunning(db, other.id))
    t.equal(await failConnectionsByRepoId(db, 987655, { code: 'REPOSITORY_DELETED', message: 'deleted' }), 1)
    t.notOk(await landRefresh(db, other.id, { commit_sha: 'b'.repeat(40) }))
    t.match(await findConnection(db, other.id), { status: 'failed', error_code: 'REPOSITORY_DELETED' })
  },
)
