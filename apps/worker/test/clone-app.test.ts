// Clone jobs of GitHub App connections (issue 13), with the real worker runtime: the token is
// minted per job, down-scoped, and failures of the App map to stable codes.
import { cloneJobId } from '@portico/core'
import { findConnection, insertConnection } from '@portico/db'
import { refusalFault } from '@portico/github-sim'
import { startTestSimulator, type Teardown, testConfig } from '@portico/testing'
import t from 'tap'
import { createProject, openDb, startTestWorker, waitFor } from './fixtures/connections.js'

const { sim, env } = await startTestSimulator(t)
const ghApp = sim.githubApp('portico-dev')
const INSTALLATION = 5550001
const SAMPLE_APP = 700002
const appEnv = {
  GITHUB_APP_ID: String(ghApp.id),
  GITHUB_APP_SLUG: ghApp.slug,
  GITHUB_APP_PRIVATE_KEY: ghApp.privateKey,
}
const MINT = `/app/installations/${INSTALLATION}/access_tokens`

async function setup(t: Teardown, extraEnv: Record<string, string | undefined> = appEnv) {
  const config = await testConfig(t, { ...env, GH_TOKEN: undefined, ...extraEnv })
  const db = openDb(t, config)
  const runtime = await startTestWorker(t, config)
  return { config, db, queue: runtime.ctx.queues.clone }
}

/** An App connection to acme/sample-app (the row the API writes: no token). */
async function appConnection(setupResult: Awaited<ReturnType<typeof setup>>) {
  const { db, config } = setupResult
  const { tenantId, projectId } = await createProject(db)
  return insertConnection(db, {
    tenant_id: tenantId,
    project_id: projectId,
    repo_url: `${config.GITHUB_URL}/acme/sample-app`,
    owner: 'acme',
    repo: 'sample-app',
    github_repo_id: SAMPLE_APP,
    repo_full_name: 'acme/sample-app',
    default_branch: 'main',
    encrypted_token: null,
    token_kind: null,
    auth_method: 'app',
    installation_id: INSTALLATION,
  })
}

const settled = (s: Awaited<ReturnType<typeof setup>>, id: string) =>
  waitFor(
    async () => {
      const row = await findConnection(s.db, id)
      return row && (row.status === 'analyzed' || row.status === 'failed' || row.error_code) ? row : undefined
    },
    60_000,
    'the connection to settle',
  )

t.test('an App connection is cloned with a token minted for the job', async (t) => {
  const s = await setup(t)
  const row = await appConnection(s)
  const before = sim.installationTokens(INSTALLATION).length
  await s.queue.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id) })
  const done = await settled(s, row.id)
  t.equal(done.status, 'analyzed', done.error_message ?? '')
  t.equal(done.routes_count, 10)
  t.equal(done.encrypted_token, null, 'still no token stored')
  t.equal(sim.installationTokens(INSTALLATION).length, before + 1, 'one token minted')
})

t.test('a rate-limited mint is transient: back to pending, retried by BullMQ', async (t) => {
  const s = await setup(t)
  const row = await appConnection(s)
  sim.injectFault(refusalFault('secondary_rate_limit', { method: 'POST', path: MINT, retryAfter: 120 }))
  await s.queue.add(
    'clone',
    { connectionId: row.id },
    { jobId: cloneJobId(row.id), attempts: 2, backoff: { type: 'fixed', delay: 200 } },
  )
  const done = await waitFor(
    async () => {
      const r = await findConnection(s.db, row.id)
      return r?.status === 'analyzed' || r?.status === 'failed' ? r : undefined
    },
    60_000,
    'the retried clone',
  )
  t.equal(done.status, 'analyzed', 'the second attempt succeeded')
  // The row lands before BullMQ records the attempt as finished: wait for the job's own end.
  const job = await waitFor(
    async () => {
      const j = await s.queue.getJob(cloneJobId(row.id))
      return j?.finishedOn ? j : undefined
    },
    30_000,
    'the job to be recorded as completed',
  )
  t.equal(job.attemptsMade, 2, 'the first attempt failed on the rate limit')
})

t.test('a worker without the App fails App connections with GITHUB_APP_NOT_CONFIGURED', async (t) => {
  const s = await setup(t, {})
  const row = await appConnection(s)
  await s.queue.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id) })
  const done = await settled(s, row.id)
  t.equal(done.status, 'failed')
  t.equal(done.error_code, 'GITHUB_APP_NOT_CONFIGURED')
})

t.test('a suspended installation: APP_ACCESS_REVOKED', async (t) => {
  const s = await setup(t)
  const row = await appConnection(s)
  sim.suspendInstallation(INSTALLATION, true)
  t.teardown(() => sim.suspendInstallation(INSTALLATION, false))
  await s.queue.add('clone', { connectionId: row.id }, { jobId: cloneJobId(row.id) })
  const done = await settled(s, row.id)
  t.equal(done.status, 'failed')
  t.equal(done.error_code, 'APP_ACCESS_REVOKED')
  t.match(done.error_message, /connect again/)
})
