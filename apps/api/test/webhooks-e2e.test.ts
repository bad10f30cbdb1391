// End to end with real processes: the API server and the worker, the simulator sending its App
// webhook to the API, Postgres and Redis. deploy → PR → merge → webhook → merged → check run →
// applied (and apply_failed), a redelivery that changes nothing, bad signatures, unknown events,
// and a renamed repository followed.
import { createSign, randomUUID } from 'node:crypto'
import { Webhooks } from '@octokit/webhooks'
import { createOctokit } from '@portico/core'
import { createDb } from '@portico/db'
import { defaultSeed, type Seed } from '@portico/github-sim'
import { freePort, startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { type DeploymentView, deployments, httpClient, signInOverHttp, startPortico, until } from './e2e.js'

/** `sha256=` HMAC of `body`, as GitHub signs deliveries (@octokit/webhooks). */
const sign = (secret: string, body: string) => new Webhooks({ secret }).sign(body)

const SECRET = `e2e-webhook-secret-${randomUUID()}`
const port = await freePort()
// The simulator's App webhook points at this API, signed with this secret.
const seed = structuredClone(defaultSeed) as Seed
const appSeed = seed.github_apps?.[0]
if (!appSeed) throw new Error('the default seed has no GitHub App')
appSeed.webhook = { url: `http://127.0.0.1:${port}/webhooks/github`, secret: SECRET }
const { sim, env, tokenOf } = await startTestSimulator(t, { seed })
const config = await testConfig(t, env)
const db = createDb(config)
t.teardown(() => db.destroy())
const octocat = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
const repo = { owner: 'acme', repo: 'infra-specs' }

const { base, api, worker } = await startPortico(t, {
  name: 'webhooks-e2e',
  config,
  env,
  port,
  overrides: {
    LOG_LEVEL: 'info',
    GITHUB_WEBHOOK_SECRET: SECRET,
    GITHUB_WRITE_SPACING_MS: '20',
    DEPLOY_WAIT_MS: '60000',
    // Webhooks only: the reconciler has its own tests (apps/worker/test/webhooks.test.ts).
    WORKER_QUEUES: 'deploy,webhooks,clone',
  },
})
const client = httpClient(base)
const { call } = client
await signInOverHttp(client, 'octocat')

const { view, waitStage, deployPod } = deployments(client)

const mergePr = async (n: number) => (await octocat.rest.pulls.merge({ ...repo, pull_number: n })).data.sha

let firstDeployment: DeploymentView | undefined

t.test('deploy → PR → merge → webhook → merged → check run completes → applied', async (t) => {
  const deployed = await deployPod('whapply')
  t.equal(deployed.stage, 'pr_open')
  t.equal(deployed.merged_at, null)
  t.same(deployed.checks, [])
  const sha = await mergePr(Number(deployed.pr_number))
  const applied = await waitStage(deployed.id, ['applied', 'apply_failed'], 'the apply check')
  t.equal(applied.stage, 'applied')
  t.equal(applied.status, 'succeeded', 'status keeps the deploy job’s meaning')
  t.equal(applied.merge_commit_sha, sha)
  t.ok(applied.merged_at)
  t.ok(applied.applied_at)
  t.equal(applied.checks.length, 1)
  t.same([applied.checks[0]?.name, applied.checks[0]?.conclusion], ['apply', 'success'])
  // Every delivery reached the API and was accepted.
  await sim.webhooksSettled()
  const closed = sim
    .webhookDeliveries({ event: 'pull_request', action: 'closed' })
    .find((d) => (d.request.payload as { number?: number }).number === deployed.pr_number)
  t.equal(closed?.statusCode, 202)
  t.match(String(closed?.response.payload), /"status":"queued"/)
  // The check run's delivery can apply the deployment before this job records its outcome.
  const stored = await until(
    async () => {
      const row = await db
        .selectFrom('webhook_deliveries')
        .select(['event', 'action', 'outcome'])
        .where('delivery_id', '=', String(closed?.guid))
        .executeTakeFirst()
      return row?.outcome === 'queued' ? undefined : row
    },
    30_000,
    'the closed delivery’s outcome',
  )
  t.same(stored, { event: 'pull_request', action: 'closed', outcome: 'processed' })
  firstDeployment = applied
})

t.test('a failing check run → apply_failed with the check’s name and URL', async (t) => {
  sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'failure', name: 'apply' })
  t.teardown(() => sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success' }))
  const deployed = await deployPod('whfail')
  await mergePr(Number(deployed.pr_number))
  const failed = await waitStage(deployed.id, ['applied', 'apply_failed'], 'the failing apply check')
  t.equal(failed.stage, 'apply_failed')
  t.equal(failed.applied_at, null)
  t.equal(failed.checks[0]?.name, 'apply')
  t.equal(failed.checks[0]?.conclusion, 'failure')
  t.match(failed.checks[0]?.url, /^https?:\/\//)
})

/** A JWT of the simulator's App (RS256), for its webhook delivery API. */
function appJwt(): string {
  const info = sim.githubApp('portico-dev')
  const now = Math.floor(Date.now() / 1000)
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const unsigned = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iat: now - 30, exp: now + 300, iss: info.id })}`
  const signature = createSign('RSA-SHA256').update(unsigned).sign(info.privateKey, 'base64url')
  return `${unsigned}.${signature}`
}

t.test('a redelivered delivery (same X-GitHub-Delivery) is a duplicate and changes nothing', async (t) => {
  const first = firstDeployment
  if (!first) return t.fail('the first test did not run')
  const original = sim
    .webhookDeliveries({ event: 'pull_request', action: 'closed' })
    .find((d) => (d.request.payload as { number?: number }).number === first.pr_number && !d.redelivery)
  if (!original) return t.fail('no pull_request delivery')
  const before = await view(first.id)
  const res = await fetch(`${sim.apiUrl}/app/hook/deliveries/${original.id}/attempts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${appJwt()}`, accept: 'application/vnd.github+json' },
  })
  t.equal(res.status, 202, await res.text())
  const again = await until(
    async () => {
      await sim.webhooksSettled()
      return sim.webhookDeliveries({ guid: original.guid }).find((d) => d.redelivery)
    },
    30_000,
    'the redelivery',
  )
  t.equal(again.statusCode, 202)
  t.match(String(again.response.payload), /"status":"duplicate"/)
  const rows = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('delivery_id', '=', original.guid)
    .execute()
  t.equal(rows.length, 1, 'stored once')
  const after = await view(first.id)
  t.same(after, before, 'the deployment is unchanged')
})

t.test('a bad signature → 401; an unknown event → 202 ignored', async (t) => {
  const body = JSON.stringify({ action: 'opened' })
  const post = (signature: string, event: string) =>
    fetch(`${base}/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': event,
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': signature,
      },
      body,
    })
  const bad = await post(await sign('not-the-secret', body), 'pull_request')
  t.equal(bad.status, 401)
  t.equal(((await bad.json()) as { code: string }).code, 'INVALID_SIGNATURE')
  const unknown = await post(await sign(SECRET, body), 'issues')
  t.equal(unknown.status, 202)
  t.equal(((await unknown.json()) as { status: string }).status, 'ignored')
})

t.test(
  'push to the default branch → the connection refreshes through its webhook; the old analysis stays until then',
  async (t) => {
    const tenant = (await call('POST', '/api/v1/tenants', { slug: 'push-e2e', name: 'Push' })).json()
    const project = (
      await call('POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'App', slug: 'app' })
    ).json()
    const github = `/api/v1/projects/${project.id}/github`
    const created = await call('POST', github, {
      repo_url: `${sim.url}/acme/sample-app`,
      pat: tokenOf('octocat'),
    })
    t.equal(created.status, 201, created.text)
    const before = await until(
      async () => {
        const body = (await call('GET', github)).json()
        if (body.status === 'failed') throw new Error(body.error_message)
        return body.status === 'analyzed' ? body : undefined
      },
      120_000,
      'the first analysis',
    )
    const pushed = await octocat.rest.repos.createOrUpdateFileContents({
      owner: 'acme',
      repo: 'sample-app',
      path: 'src/routes/pushed.js',
      branch: 'main',
      message: 'a route pushed after connecting',
      content: Buffer.from("router.get('/pushed', handler)\n").toString('base64'),
    })
    const newSha = String(pushed.data.commit.sha)
    const seen: { commit_sha: string; status: string }[] = []
    const after = await until(
      async () => {
        const body = (await call('GET', github)).json()
        seen.push({ commit_sha: body.commit_sha, status: body.status })
        return body.commit_sha === newSha && body.refresh_status === null ? body : undefined
      },
      120_000,
      'the refresh the push webhook asked for',
    )
    t.equal(after.status, 'analyzed')
    t.not(after.commit_sha, before.commit_sha)
    t.ok(after.refreshed_at, 'refreshed_at is set')
    t.ok(
      seen.every(
        (s) => s.status === 'analyzed' && (s.commit_sha === before.commit_sha || s.commit_sha === newSha),
      ),
      'until the refresh landed, the previous analysis stayed visible',
    )
    t.ok(seen[0]?.commit_sha === before.commit_sha, 'the old commit was seen first')
  },
)

t.test('a renamed repository is followed through its webhook', async (t) => {
  const tenant = await db
    .insertInto('tenants')
    .values({ slug: 'wh-e2e', name: 'WH' })
    .returning('id')
    .executeTakeFirstOrThrow()
  const project = await db
    .insertInto('projects')
    .values({ tenant_id: tenant.id, name: 'App', slug: 'app' })
    .returning('id')
    .executeTakeFirstOrThrow()
  const conn = await db
    .insertInto('github_connections')
    .values({
      tenant_id: tenant.id,
      project_id: project.id,
      repo_url: `${sim.url}/acme/sample-app`,
      owner: 'acme',
      repo: 'sample-app',
      encrypted_token: 'unused',
      github_repo_id: 700002,
      repo_full_name: 'acme/sample-app',
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  await sim.renameRepo('acme/sample-app', 'acme/sample-app-moved')
  const row = await until(
    async () => {
      const r = await db
        .selectFrom('github_connections')
        .select(['repo_full_name', 'owner', 'repo'])
        .where('id', '=', conn.id)
        .executeTakeFirst()
      return r?.repo_full_name === 'acme/sample-app-moved' ? r : undefined
    },
    60_000,
    'the rename to be followed',
  )
  t.same(row, { repo_full_name: 'acme/sample-app-moved', owner: 'acme', repo: 'sample-app-moved' })
})

t.test('no secret in the logs', async (t) => {
  t.notOk(api.logs.text.includes(SECRET), 'API logs')
  t.notOk(worker.logs.text.includes(SECRET), 'worker logs')
})
