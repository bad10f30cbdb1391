// The webhooks queue's processor and the reconciler against the simulator: real GitHub-shaped
// payloads (taken from the simulator's delivery log), real Postgres, Redis and BullMQ.
import { createOctokit, deployJobId, sessionKeyPrefix, webhookJobId, webhookJobOptions } from '@portico/core'
import {
  clearMissingCounts,
  type DeploymentRow,
  findConnection,
  findDeployment,
  findWebhookDelivery,
  insertDeployment,
  recordReconciliation,
  recordWebhookDelivery,
} from '@portico/db'
import { defaultSeed, type Seed } from '@portico/github-sim'
import { deployJobOptions } from '@portico/pods'
import { freePort, startTestSimulator, testConfig } from '@portico/testing'
import { sql } from 'kysely'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { evaluateChecks, PULL_REQUEST_LOST } from '../src/deploy/follow-pull-request.js'
import {
  MISSING_AT_LEAST_MS,
  PULL_MISSING_PASSES,
  reconcileDeployments,
} from '../src/deploy/reconcile-deployments.js'
import { processors, startWorker } from '../src/lib.js'
import { createConnection, waitFor } from './fixtures/connections.js'

// The App's webhook points at a port nobody listens on: the simulator still logs every payload.
const seed = structuredClone(defaultSeed) as Seed
const hook = seed.github_apps?.[0]?.webhook
if (hook) hook.url = `http://127.0.0.1:${await freePort()}/webhooks/github`
const { sim, env, tokenOf } = await startTestSimulator(t, { seed })
const config = await testConfig(t, { ...env, GITHUB_WRITE_SPACING_MS: '20' })
const runtime = await startWorker(
  { ...config, workerQueues: ['deploy', 'webhooks'] },
  processors,
  pino({ level: 'silent' }),
)
t.teardown(() => runtime.close())
const ctx = runtime.ctx
const { db, queues } = ctx
const repo = { owner: 'acme', repo: 'infra-specs' }
const octocat = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
let pods = 0

/** Opens a deploy pull request through the real deploy processor. */
async function deploy(): Promise<DeploymentRow> {
  pods += 1
  const row = await insertDeployment(db, {
    customer: 'hooks',
    env: `e${pods}`,
    instance_name: `hooks-e${pods}-01`,
  })
  await queues.deploy.add('deploy', { deploymentId: row.id }, deployJobOptions(deployJobId(row.id)))
  return waitFor(
    async () => {
      const r = await findDeployment(db, row.id)
      if (r?.status === 'failed') throw new Error(`deploy failed: ${r.error_message}`)
      return r?.stage === 'pr_open' ? r : undefined
    },
    60_000,
    'the deploy pull request',
  )
}

async function merge(row: DeploymentRow): Promise<string> {
  const res = await octocat.rest.pulls.merge({ ...repo, pull_number: Number(row.pr_number) })
  await sim.webhooksSettled()
  return res.data.sha
}

/** The simulator's logged delivery matching `pick`, waiting for it to be sent. */
type Payload = {
  action?: unknown
  number?: unknown
  sha?: unknown
  state?: unknown
  check_run?: { head_sha?: unknown }
}
async function sent(event: string, pick: (payload: Payload) => boolean) {
  return waitFor(
    async () => {
      await sim.webhooksSettled()
      return sim.webhookDeliveries({ event }).find((d) => pick(d.request.payload as Payload))
    },
    30_000,
    `a ${event} delivery`,
  )
}

/** Stores a simulator delivery as POST /webhooks/github does, queues it and waits for its outcome. */
async function processDelivery(d: {
  guid: string
  event: string
  action: string | null
  request: { payload: unknown }
}) {
  await recordWebhookDelivery(db, {
    delivery_id: d.guid,
    event: d.event,
    action: d.action,
    payload: JSON.stringify(d.request.payload),
  })
  const job = await queues.webhooks.add(
    'webhook',
    { deliveryId: d.guid },
    webhookJobOptions(webhookJobId(d.guid)),
  )
  await waitFor(
    async () => {
      const state = await queues.webhooks.getJobState(String(job.id))
      return state === 'completed' || state === 'failed' ? state : undefined
    },
    60_000,
    `delivery ${d.guid}`,
  )
  return findWebhookDelivery(db, d.guid)
}

const deployment = async (id: string) => (await findDeployment(db, id)) as DeploymentRow

/** Closes every followed deployment, so a reconciler test follows only its own. */
async function followNothing() {
  await db
    .updateTable('deployments')
    .set({ stage: 'closed' })
    .where('stage', 'in', ['pr_open', 'merged'])
    .execute()
}

/** A `pr_open` deployment as the deploy job leaves it, for pull request `prNumber` from `branch`. */
async function openDeployment(env: string, prNumber: number, branch: string): Promise<DeploymentRow> {
  return insertDeployment(db, {
    customer: 'hooks',
    env,
    instance_name: `hooks-${env}-01`,
    status: 'succeeded',
    stage: 'pr_open',
    branch,
    pr_number: prNumber,
    pr_url: `${sim.url}/acme/infra-specs/pull/${prNumber}`,
    finished_at: new Date(),
  })
}

/** The worker context with a logger whose warnings are kept in `warnings` (their messages). */
function watchedContext(overrides: Partial<typeof ctx.config> = {}) {
  const warnings: string[] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) })
  return { ctx: { ...ctx, logger, config: { ...ctx.config, ...overrides } }, warnings }
}

t.test('evaluateChecks: every check completed decides; none or pending leave it merged', async (t) => {
  const run = (name: string, status: string, conclusion: string | null) => ({
    name,
    status,
    conclusion,
    details_url: `https://ci/${name}`,
  })
  t.equal(evaluateChecks([], []).verdict, 'none')
  t.equal(evaluateChecks([run('a', 'in_progress', null)], []).verdict, 'pending')
  t.equal(
    evaluateChecks([run('a', 'completed', 'success'), run('b', 'completed', 'skipped')], []).verdict,
    'applied',
  )
  const failed = evaluateChecks(
    [run('a', 'completed', 'success')],
    [{ context: 'ci/x', state: 'error', target_url: 'https://ci/x' }],
  )
  t.equal(failed.verdict, 'apply_failed')
  t.same(failed.checks[1], { name: 'ci/x', conclusion: 'error', url: 'https://ci/x' })
  t.equal(
    evaluateChecks([run('a', 'completed', 'failure')], [{ context: 'ci/y', state: 'pending' }]).verdict,
    'pending',
    'a failure waits for the others',
  )
})

t.test('pull_request closed (merged) → merged; statuses on the merge commit → applied', async (t) => {
  sim.setApplyOnMerge('acme', 'infra-specs', null)
  t.teardown(() => sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success' }))
  const row = await deploy()
  const sha = await merge(row)
  const closed = await sent('pull_request', (p) => p.action === 'closed' && p.number === row.pr_number)
  const delivery = await processDelivery(closed)
  t.equal(delivery?.outcome, 'processed', delivery?.result ?? '')
  let now = await deployment(row.id)
  t.equal(now.stage, 'merged')
  t.equal(now.merge_commit_sha, sha)
  t.ok(now.merged_at)
  t.equal(now.checks, null, 'no checks yet: stays merged')

  const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
  await bot.rest.repos.createCommitStatus({ ...repo, sha, state: 'pending', context: 'ci/apply' })
  const pending = await sent('status', (p) => p.sha === sha && p.state === 'pending')
  t.equal((await processDelivery(pending))?.outcome, 'ignored')
  t.equal((await deployment(row.id)).stage, 'merged')

  await bot.rest.repos.createCommitStatus({
    ...repo,
    sha,
    state: 'success',
    context: 'ci/apply',
    target_url: 'https://ci.example/apply/1',
  })
  const success = await sent('status', (p) => p.sha === sha && p.state === 'success')
  t.equal((await processDelivery(success))?.outcome, 'processed')
  now = await deployment(row.id)
  t.equal(now.stage, 'applied')
  t.ok(now.applied_at)
  t.same(now.checks, [{ name: 'ci/apply', conclusion: 'success', url: 'https://ci.example/apply/1' }])

  t.test('processing a delivery twice changes nothing twice', async (t) => {
    const before = await deployment(row.id)
    const again = await processDelivery(closed)
    t.equal(again?.outcome, 'processed', 'the first outcome stays')
    // Even with its settlement forgotten (a crash between the change and the record), a re-run changes nothing.
    await db
      .updateTable('webhook_deliveries')
      .set({ processed_at: null })
      .where('delivery_id', '=', closed.guid)
      .execute()
    await queues.webhooks.remove(webhookJobId(closed.guid))
    const rerun = await processDelivery(closed)
    t.match(rerun?.result, /unchanged/)
    const after = await deployment(row.id)
    t.equal(after.stage, 'applied')
    t.same(after.updated_at, before.updated_at)
  })
})

t.test('a failing check run (apply_on_merge) → apply_failed with its name and URL', async (t) => {
  sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'failure', name: 'apply' })
  t.teardown(() => sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success' }))
  const row = await deploy()
  const sha = await merge(row)
  const completed = await sent('check_run', (p) => p.action === 'completed' && p.check_run?.head_sha === sha)
  const closed = await sent('pull_request', (p) => p.action === 'closed' && p.number === row.pr_number)
  // The check run finished before the merge was processed: evaluated when the merge is recorded.
  t.equal((await processDelivery(completed))?.outcome, 'ignored', 'not merged yet as far as Portico knows')
  t.equal((await processDelivery(closed))?.outcome, 'processed')
  const now = await deployment(row.id)
  t.equal(now.stage, 'apply_failed')
  t.equal(now.applied_at, null)
  t.equal(now.checks?.[0]?.name, 'apply')
  t.equal(now.checks?.[0]?.conclusion, 'failure')
  t.match(now.checks?.[0]?.url, /^https?:\/\//)
})

t.test('pull_request closed without merging → closed', async (t) => {
  const row = await deploy()
  await octocat.rest.pulls.update({ ...repo, pull_number: Number(row.pr_number), state: 'closed' })
  const closed = await sent('pull_request', (p) => p.action === 'closed' && p.number === row.pr_number)
  t.equal((await processDelivery(closed))?.outcome, 'processed')
  const now = await deployment(row.id)
  t.equal(now.stage, 'closed')
  t.equal(now.merged_at, null)
})

t.test('a newer deploy of the same pod supersedes the older open one', async (t) => {
  const first = await insertDeployment(db, { customer: 'hooks', env: 'sup', instance_name: 'hooks-sup-01' })
  await queues.deploy.add('deploy', { deploymentId: first.id }, deployJobOptions(deployJobId(first.id)))
  await waitFor(async () => ((await deployment(first.id)).stage === 'pr_open' ? true : undefined), 60_000)
  const second = await insertDeployment(db, { customer: 'hooks', env: 'sup', instance_name: 'hooks-sup-02' })
  await queues.deploy.add('deploy', { deploymentId: second.id }, deployJobOptions(deployJobId(second.id)))
  await waitFor(async () => ((await deployment(second.id)).stage === 'pr_open' ? true : undefined), 60_000)
  t.equal((await deployment(first.id)).superseded_by, second.id)
  t.equal((await deployment(second.id)).superseded_by, null)
})

t.test(
  'push to the default branch → its connections refresh, debounced; other refs change nothing',
  async (t) => {
    const conn = await createConnection(db, config, { token: tokenOf('octocat') })
    await db
      .updateTable('github_connections')
      .set({ github_repo_id: 700002, repo_full_name: 'acme/sample-app', status: 'analyzed', progress: 100 })
      .where('id', '=', conn.id)
      .execute()
    const pushTo = async (branch: string, path: string) => {
      await octocat.rest.repos.createOrUpdateFileContents({
        owner: 'acme',
        repo: 'sample-app',
        path,
        branch,
        message: `push to ${branch}`,
        content: Buffer.from(path).toString('base64'),
      })
      return sent('push', (p) => {
        const push = p as {
          ref?: unknown
          repository?: { full_name?: unknown }
          head_commit?: { message?: unknown }
        }
        return (
          push.ref === `refs/heads/${branch}` &&
          push.repository?.full_name === 'acme/sample-app' &&
          push.head_commit?.message === `push to ${branch}`
        )
      })
    }
    const refreshJobs = async () =>
      (await queues.clone.getJobs(['waiting', 'delayed', 'active', 'prioritized'])).filter(
        (j) => j?.data.connectionId === conn.id && j.data.refresh === true,
      )

    await octocat.rest.git.createRef({
      owner: 'acme',
      repo: 'sample-app',
      ref: 'refs/heads/feature',
      sha: (await octocat.rest.repos.getBranch({ owner: 'acme', repo: 'sample-app', branch: 'main' })).data
        .commit.sha,
    })
    const feature = await processDelivery(await pushTo('feature', 'feature.txt'))
    t.equal(feature?.outcome, 'ignored', 'a push to another branch')
    t.match(feature?.result, /not the default branch/)
    t.same(await refreshJobs(), [])

    const first = await processDelivery(await pushTo('main', 'one.txt'))
    t.equal(first?.outcome, 'processed')
    t.match(first?.result, new RegExp(`${conn.id} queued`))
    const second = await processDelivery(await pushTo('main', 'two.txt'))
    t.equal(second?.outcome, 'processed')
    t.equal((await refreshJobs()).length, 1, 'a burst of pushes makes one refresh')
    t.equal((await findConnection(db, conn.id))?.refresh_status, 'queued')
    t.equal(
      (await findConnection(db, conn.id))?.status,
      'analyzed',
      'the analysis stays until the refresh lands',
    )

    const again = await processDelivery({ ...(await pushTo('main', 'three.txt')) })
    t.equal(again?.outcome, 'processed')
    t.equal((await refreshJobs()).length, 1, 'still one')
    await queues.clone.obliterate({ force: true })
  },
)

t.test(
  'installation suspended, repositories removed, uninstalled → App connections fail with APP_ACCESS_REVOKED',
  async (t) => {
    const appConnection = async (repoId: number, repo: string) => {
      const row = await createConnection(db, config, { token: 'unused', repo })
      await db
        .updateTable('github_connections')
        .set({
          auth_method: 'app',
          installation_id: 5550001,
          encrypted_token: null,
          token_kind: null,
          github_repo_id: repoId,
          status: 'analyzed',
        })
        .where('id', '=', row.id)
        .execute()
      return row.id
    }
    const specs = await appConnection(700001, 'infra-specs')
    const sample = await appConnection(700002, 'sample-app')
    const pat = await createConnection(db, config, { token: tokenOf('octocat') })
    await db
      .updateTable('github_connections')
      .set({ github_repo_id: 700002, status: 'analyzed' })
      .where('id', '=', pat.id)
      .execute()

    sim.suspendInstallation(5550001, true)
    const suspended = await processDelivery(await sent('installation', (p) => p.action === 'suspend'))
    t.equal(suspended?.outcome, 'processed')
    t.match(suspended?.result, /^2 connection\(s\) failed/)
    for (const id of [specs, sample]) {
      const row = await findConnection(db, id)
      t.equal(row?.status, 'failed')
      t.equal(row?.error_code, 'APP_ACCESS_REVOKED')
      t.match(row?.error_message, /GitHub App can no longer read this repository/)
    }
    t.equal(
      (await findConnection(db, pat.id))?.status,
      'analyzed',
      'a PAT connection to the same repository is not touched',
    )
    const twice = await processDelivery({
      ...(await sent('installation', (p) => p.action === 'suspend')),
      guid: `again-${Date.now()}`,
    })
    t.match(twice?.result, /^0 connection\(s\) failed/, 'processing it again changes nothing')
    sim.suspendInstallation(5550001, false)
    const unsuspended = await processDelivery(await sent('installation', (p) => p.action === 'unsuspend'))
    t.equal(unsuspended?.outcome, 'ignored')

    // Back to analysed; then only sample-app leaves the installation.
    await db
      .updateTable('github_connections')
      .set({ status: 'analyzed', error_code: null, error_message: null })
      .where('id', 'in', [specs, sample])
      .execute()
    sim.setInstallationRepositories(5550001, ['infra-specs'])
    const removed = await processDelivery(
      await sent('installation_repositories', (p) => p.action === 'removed'),
    )
    t.equal(removed?.outcome, 'processed')
    t.equal((await findConnection(db, sample))?.error_code, 'APP_ACCESS_REVOKED')
    t.equal(
      (await findConnection(db, specs))?.status,
      'analyzed',
      'the repository still selected keeps working',
    )
    sim.setInstallationRepositories(5550001, ['infra-specs', 'sample-app'])
    const added = await processDelivery(await sent('installation_repositories', (p) => p.action === 'added'))
    t.equal(added?.outcome, 'ignored')
  },
)

t.test('github_app_authorization revoked → that user’s sessions end, others stay', async (t) => {
  const prefix = sessionKeyPrefix(config.REDIS_PREFIX)
  const session = (githubId: number) =>
    JSON.stringify({ cookie: {}, user: { id: 'u', login: 'x', github_id: githubId } })
  const octocatId = (await octocat.rest.users.getAuthenticated()).data.id
  await ctx.redis.set(`${prefix}s-octocat-1`, session(octocatId))
  await ctx.redis.set(`${prefix}s-octocat-2`, session(octocatId))
  await ctx.redis.set(`${prefix}s-other`, session(octocatId + 1))
  sim.revokeAppAuthorization('portico-dev', 'octocat')
  const revoked = await sent('github_app_authorization', (p) => p.action === 'revoked')
  const stored = await processDelivery(revoked)
  t.equal(stored?.outcome, 'processed')
  t.match(stored?.result, /^2 session\(s\) of GitHub user/)
  t.equal(await ctx.redis.get(`${prefix}s-octocat-1`), null)
  t.equal(await ctx.redis.get(`${prefix}ended:s-octocat-1`), '1', 'tombstoned as a logout is')
  t.ok(await ctx.redis.get(`${prefix}s-other`), "another user's session stays")
})

t.test('repository renamed → the connection follows; deleted → REPOSITORY_DELETED', async (t) => {
  const conn = await createConnection(db, config, { token: tokenOf('octocat') })
  await db
    .updateTable('github_connections')
    .set({ github_repo_id: 700002, repo_full_name: 'acme/sample-app' })
    .where('id', '=', conn.id)
    .execute()
  await sim.renameRepo('acme/sample-app', 'acme/sample-app-renamed')
  const renamed = await sent('repository', (p) => p.action === 'renamed')
  t.equal((await processDelivery(renamed))?.outcome, 'processed')
  let row = await findConnection(db, conn.id)
  t.equal(row?.repo_full_name, 'acme/sample-app-renamed')
  t.equal(row?.owner, 'acme')
  t.equal(row?.repo, 'sample-app-renamed')

  sim.emitRepositoryEvent('acme', 'sample-app-renamed', 'deleted')
  const deleted = await sent('repository', (p) => p.action === 'deleted')
  t.equal((await processDelivery(deleted))?.outcome, 'processed')
  row = await findConnection(db, conn.id)
  t.equal(row?.status, 'failed')
  t.equal(row?.error_code, 'REPOSITORY_DELETED')
  t.equal(row?.encrypted_token, null)
})

t.test('the reconciler reaches the same states with conditional requests', async (t) => {
  // Only this test's deployments are followed.
  await db
    .updateTable('deployments')
    .set({ stage: 'closed' })
    .where('stage', 'in', ['pr_open', 'merged'])
    .execute()
  sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success', name: 'apply', delay_ms: 50 })
  const a = await deploy()
  const b = await deploy()
  const c = await deploy()
  const counted = () => sim.ledger.count({ login: 'portico-bot', counted: true })

  let before = counted()
  let pass = await reconcileDeployments(ctx)
  t.same([pass.checked, pass.changed, pass.notModified], [3, 0, 0])
  t.equal(counted() - before, 3, 'first look: one counted read per pull request')

  before = counted()
  pass = await reconcileDeployments(ctx)
  t.same([pass.checked, pass.changed, pass.notModified], [3, 0, 3])
  t.equal(counted() - before, 0, 'unchanged pull requests: 0 counted calls')
  t.equal(sim.ledger.entries({ login: 'portico-bot', status: 304 }).length >= 3, true)

  // a: merged, its apply check run succeeds → applied.
  const sha = await merge(a)
  await waitFor(async () => {
    const runs = await octocat.rest.checks.listForRef({ ...repo, ref: sha })
    return runs.data.check_runs.some((r) => r.status === 'completed') ? true : undefined
  })
  // b: closed unmerged.
  await octocat.rest.pulls.update({ ...repo, pull_number: Number(b.pr_number), state: 'closed' })
  before = counted()
  pass = await reconcileDeployments(ctx)
  t.equal(pass.changed, 2)
  // a: pull + check runs + status; b: pull; c: 304, or a read when its pull request changed too
  // (its mergeability follows the base branch a just moved).
  const spent = counted() - before
  t.ok(spent >= 4 && spent <= 5, `counted calls: ${spent}`)
  t.equal((await deployment(a.id)).stage, 'applied')
  t.same(
    (await deployment(a.id)).checks?.map((ch) => [ch.name, ch.conclusion]),
    [['apply', 'success']],
  )
  t.equal((await deployment(b.id)).stage, 'closed')
  t.equal((await deployment(c.id)).stage, 'pr_open')

  // c: merged with a check that keeps running → merged, then unchanged checks cost nothing.
  sim.setApplyOnMerge('acme', 'infra-specs', null)
  t.teardown(() => sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success' }))
  const shaC = await merge(c)
  const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
  await bot.rest.repos.createCommitStatus({ ...repo, sha: shaC, state: 'pending', context: 'ci/apply' })
  pass = await reconcileDeployments(ctx)
  t.equal((await deployment(c.id)).stage, 'merged')
  t.equal((await deployment(c.id)).merge_commit_sha, shaC)
  pass = await reconcileDeployments(ctx) // stores the check list's ETags
  before = counted()
  pass = await reconcileDeployments(ctx)
  t.equal(counted() - before, 0, 'merged with unchanged checks: 0 counted calls')
  t.equal(pass.notModified, 2)
  t.equal((await deployment(c.id)).stage, 'merged')
  t.same((await deployment(c.id)).checks, [{ name: 'ci/apply', conclusion: null, url: null }])

  // The check completes: the next pass sees it (the status changed, so it is read again).
  await bot.rest.repos.createCommitStatus({
    ...repo,
    sha: shaC,
    state: 'failure',
    context: 'ci/apply',
    target_url: 'https://ci.example/apply/9',
  })
  pass = await reconcileDeployments(ctx)
  const failed = await deployment(c.id)
  t.equal(failed.stage, 'apply_failed')
  t.same(failed.checks, [{ name: 'ci/apply', conclusion: 'failure', url: 'https://ci.example/apply/9' }])
})

t.test('the reconciler never applies another branch’s pull request of the same number', async (t) => {
  await followNothing()
  const own = await deploy()
  // A reset simulator or another GH_REPO: this number is now `own`'s pull request, not the stray's.
  const stray = await openDeployment('stray', Number(own.pr_number), `deploy-hooks-stray-${own.id}`)
  const sha = await merge(own)
  await waitFor(async () => {
    const runs = await octocat.rest.checks.listForRef({ ...repo, ref: sha })
    return runs.data.check_runs.some((r) => r.status === 'completed') ? true : undefined
  })
  const { ctx: watched, warnings } = watchedContext()
  let pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [2, 2, 0])
  t.equal((await deployment(own.id)).stage, 'applied', 'the pull request’s own deployment is applied')
  const lost = await deployment(stray.id)
  t.match(lost, {
    stage: 'closed',
    status: 'failed',
    merged_at: null,
    merge_commit_sha: null,
    applied_at: null,
    checks: null,
    error_code: PULL_REQUEST_LOST,
    error_status: 404,
  })
  t.match(lost.error_message, new RegExp(`#${own.pr_number} .*no longer belongs to this deployment`))
  t.same(warnings, ['deploy pull request lost'])

  pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [0, 0, 0], 'neither is followed any more')
  t.same((await deployment(stray.id)).updated_at, lost.updated_at)
  t.same(warnings, ['deploy pull request lost'], 'no warning again')
})

t.test('a pull request answering 404 ends its deployment once; 5xx is retried', async (t) => {
  await followNothing()
  const gone = await openDeployment('gone', 99_999, 'deploy-hooks-gone')

  // Unreadable repository (a wrong GH_REPO or token): a 404 proves nothing, so it keeps retrying.
  const misconfigured = watchedContext({ GH_REPO: 'acme/no-such-specs' })
  for (let i = 0; i < 2; i++) {
    const pass = await reconcileDeployments(misconfigured.ctx)
    t.same([pass.checked, pass.changed, pass.errors], [1, 0, 1])
  }
  t.same(misconfigured.warnings, ['reconciling a deployment failed', 'reconciling a deployment failed'])
  sim.injectFault({ method: 'GET', path: '/repos/acme/infra-specs/pulls/99999', status: 502, times: 1 })
  const flaky = watchedContext()
  let pass = await reconcileDeployments(flaky.ctx)
  t.same([pass.checked, pass.changed, pass.errors], [1, 0, 1], 'a 502 is retried')
  t.same(flaky.warnings, ['reconciling a deployment failed'])
  t.match(await deployment(gone.id), { stage: 'pr_open', status: 'succeeded', error_code: null })

  // A review's example: one 404 (GitHub's lag, a blip) ended a live deployment for good.
  const { ctx: watched, warnings } = watchedContext()
  for (let i = 1; i < PULL_MISSING_PASSES; i++) {
    pass = await reconcileDeployments(watched)
    t.same([pass.checked, pass.changed, pass.errors], [1, 0, 1], `404 on pass ${i}: not yet`)
    t.match(await deployment(gone.id), { stage: 'pr_open', status: 'succeeded', error_code: null })
  }
  t.equal(warnings.length, PULL_MISSING_PASSES - 1)
  // Three passes alone can be seconds apart (RECONCILE_INTERVAL_SECONDS=10): not long enough.
  pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [1, 0, 1], `404 on pass ${PULL_MISSING_PASSES}, too soon`)
  t.match(await deployment(gone.id), { stage: 'pr_open', error_code: null })
  warnings.length = 0
  pass = await reconcileDeployments(watched, new Date(Date.now() + MISSING_AT_LEAST_MS))
  t.same([pass.checked, pass.changed, pass.errors], [1, 1, 0])
  const ended = await deployment(gone.id)
  t.match(ended, { stage: 'closed', status: 'failed', error_code: PULL_REQUEST_LOST, error_status: 404 })
  t.match(ended.error_message, /#99999 was not found in acme\/infra-specs: it no longer belongs/)
  t.same(warnings, ['deploy pull request lost'])

  const before = sim.ledger.count({ login: 'portico-bot' })
  pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [0, 0, 0])
  t.equal(sim.ledger.count({ login: 'portico-bot' }) - before, 0, 'no GitHub call')
  t.same((await deployment(gone.id)).updated_at, ended.updated_at)
  t.same(warnings, ['deploy pull request lost'], 'no warning again')
})

t.test('an error between two 404s starts the count again: only 404s in a row end a deployment', async (t) => {
  await followNothing()
  const gone = await openDeployment('blip', 99_998, 'deploy-hooks-blip')
  const { ctx: watched, warnings } = watchedContext()
  const passes = async (n: number) => {
    for (let i = 0; i < n; i++) await reconcileDeployments(watched)
  }
  await passes(PULL_MISSING_PASSES - 1)
  sim.injectFault({ method: 'GET', path: '/repos/acme/infra-specs/pulls/99998', status: 502, times: 1 })
  const blip = await reconcileDeployments(watched)
  t.same([blip.checked, blip.changed, blip.errors], [1, 0, 1], 'the 502 is an error')
  await passes(PULL_MISSING_PASSES - 1)
  t.match(await deployment(gone.id), { stage: 'pr_open', error_code: null }, 'not three 404s in a row yet')
  t.notOk(warnings.includes('deploy pull request lost'))
  // A pass where the repository itself does not read says nothing about the pull request: the
  // count neither grows nor starts again (a flaky read could otherwise hold it back for ever).
  sim.injectFault({ method: 'GET', path: '/repos/acme/infra-specs', status: 502, times: 1 })
  const unknown = await reconcileDeployments(watched)
  t.same([unknown.checked, unknown.changed, unknown.errors], [1, 0, 1])
  t.equal((await deployment(gone.id)).github_etags?.pull_missing, PULL_MISSING_PASSES - 1)
  const last = await reconcileDeployments(watched, new Date(Date.now() + MISSING_AT_LEAST_MS))
  t.same([last.checked, last.changed], [1, 1], 'the third 404 in a row, long enough after the first, ends it')
  t.match(await deployment(gone.id), { stage: 'closed', status: 'failed', error_code: PULL_REQUEST_LOST })
})

t.test('a database error during a run of 404s neither ends the run nor adds to it', async (t) => {
  // A review's suspicion: writing a pass's count failed (the database briefly away), and the
  // error was taken for another answer from GitHub, so the run's count and clock started again.
  await followNothing()
  const gone = await openDeployment('dberror', 99_996, 'deploy-hooks-dberror')
  const { ctx: watched } = watchedContext()
  for (let i = 0; i < PULL_MISSING_PASSES - 1; i++) await reconcileDeployments(watched)
  const before = (await deployment(gone.id)).github_etags
  t.equal(before?.pull_missing, PULL_MISSING_PASSES - 1)
  // The next update of a deployment fails once, as a real one would in an outage (a sequence
  // is not rolled back with the failed statement, so only its first value fails).
  await sql`create sequence reconcile_outage`.execute(db)
  await sql`create function reconcile_outage() returns trigger language plpgsql as $$
    begin
      if nextval('reconcile_outage') = 1 then raise exception 'the database is unavailable'; end if;
      return new;
    end $$`.execute(db)
  await sql`create trigger reconcile_outage before update on deployments
    for each row execute function reconcile_outage()`.execute(db)
  t.teardown(async () => {
    await sql`drop trigger if exists reconcile_outage on deployments`.execute(db)
    await sql`drop function if exists reconcile_outage()`.execute(db)
    await sql`drop sequence if exists reconcile_outage`.execute(db)
  })
  const failed = await reconcileDeployments(watched)
  t.same(
    [failed.checked, failed.changed, failed.errors],
    [1, 0, 2],
    'the 404 not yet long enough, and the failed write',
  )
  t.same((await deployment(gone.id)).github_etags, before, 'the count and its clock are as they were')
  const last = await reconcileDeployments(watched, new Date(Date.now() + MISSING_AT_LEAST_MS))
  t.same([last.checked, last.changed], [1, 1], 'the next 404 in a row, long enough after the first, ends it')
  t.match(await deployment(gone.id), { stage: 'closed', status: 'failed', error_code: PULL_REQUEST_LOST })
})

t.test('a merge commit GitHub no longer has stops being followed after passes in a row', async (t) => {
  // A review's example: history rewritten after the merge. GitHub answers 422 "No commit found
  // for SHA" for its checks on every pass, which went on (counted, and logged) until
  // APPLY_TIMEOUT_HOURS.
  await followNothing()
  const sha = 'c0ffee'.repeat(6).concat('0000')
  const row = await insertDeployment(db, {
    customer: 'hooks',
    env: 'rewritten',
    instance_name: 'hooks-rewritten-01',
    status: 'succeeded',
    stage: 'merged',
    branch: 'deploy-hooks-rewritten',
    pr_number: 99_996,
    pr_url: `${sim.url}/acme/infra-specs/pull/99996`,
    merged_at: new Date(),
    merge_commit_sha: sha,
    finished_at: new Date(),
  })
  t.teardown(() => db.updateTable('deployments').set({ stage: 'closed' }).where('id', '=', row.id).execute())
  const { ctx: watched, warnings } = watchedContext()
  const runsPath = `/repos/acme/infra-specs/commits/${sha}/check-runs`

  let pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [1, 0, 1], 'one unknown commit: not yet')
  t.equal((await deployment(row.id)).github_etags?.commit_missing, 1)
  // Another answer (a 502) starts the count again.
  sim.injectFault({ method: 'GET', path: runsPath, status: 502, times: 1 })
  pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.errors], [1, 1])
  t.equal((await deployment(row.id)).github_etags?.commit_missing, undefined, 'a 502 breaks the run')
  // A 422 while the repository itself does not read says nothing: the count stays.
  pass = await reconcileDeployments(watched)
  sim.injectFault({ method: 'GET', path: '/repos/acme/infra-specs', status: 502, times: 1 })
  pass = await reconcileDeployments(watched)
  t.equal((await deployment(row.id)).github_etags?.commit_missing, 1)
  t.notOk((await deployment(row.id)).github_etags?.commit_lost)

  for (let i = 2; i <= PULL_MISSING_PASSES; i++) pass = await reconcileDeployments(watched)
  t.notOk((await deployment(row.id)).github_etags?.commit_lost, 'three passes, but seconds apart')
  warnings.length = 0
  pass = await reconcileDeployments(watched, new Date(Date.now() + MISSING_AT_LEAST_MS))
  const lost = await deployment(row.id)
  t.match(lost, { stage: 'merged', status: 'succeeded', merge_commit_sha: sha, error_code: null })
  t.equal(lost.github_etags?.commit_lost, true)
  t.same(
    warnings.at(-1),
    'deploy merge commit not found in the repository; it stays merged and is no longer followed',
  )

  const before = sim.ledger.count({ login: 'portico-bot' })
  pass = await reconcileDeployments(watched)
  t.same([pass.checked, pass.changed, pass.errors], [0, 0, 0], 'no longer followed')
  t.equal(sim.ledger.count({ login: 'portico-bot' }) - before, 0, 'no GitHub call')
})

/** A merged deployment of `env` for merge commit `sha`, with `etags` stored. */
async function mergedDeployment(t: Test, env: string, sha: string, etags?: Record<string, unknown>) {
  const row = await insertDeployment(db, {
    customer: 'hooks',
    env,
    instance_name: `hooks-${env}-01`,
    status: 'succeeded',
    stage: 'merged',
    branch: `deploy-hooks-${env}`,
    pr_number: 99_990,
    pr_url: `${sim.url}/acme/infra-specs/pull/99990`,
    merged_at: new Date(),
    merge_commit_sha: sha,
    finished_at: new Date(),
  })
  if (etags) await recordReconciliation(db, row.id, etags)
  t.teardown(() => db.updateTable('deployments').set({ stage: 'closed' }).where('id', '=', row.id).execute())
  return row
}

t.test('a 404 of the pull request before the merge does not start the merge commit’s clock', async (t) => {
  // A review's example: the shared start time of a run of misses, kept from a pull request's 404
  // an hour before the merge, let three unknown-commit answers seconds apart stop the following.
  await followNothing()
  const hourAgo = Date.now() - 3600_000
  const row = await mergedDeployment(t, 'clock', 'c1c1c1'.repeat(6).concat('0000'), {
    pull_missing: 1,
    missing_since: hourAgo,
  })
  const { ctx: watched } = watchedContext()
  for (let i = 1; i <= PULL_MISSING_PASSES; i++)
    await reconcileDeployments(watched, new Date(Date.now() + i * 10_000))
  const etags = (await deployment(row.id)).github_etags
  t.notOk(etags?.commit_lost, 'three unknown-commit passes 10 s apart: not yet')
  t.equal(etags?.commit_missing, PULL_MISSING_PASSES)
  t.equal(etags?.pull_missing, undefined, 'the pull request’s count is gone')
  t.ok((etags?.missing_since ?? 0) > hourAgo, 'the clock started with the first unknown commit')
})

t.test('an answer followed by a rate limit still breaks a run of unknown commits', async (t) => {
  // A review's example: the run was reset in memory only, and the rate limit's early stop kept the
  // stored count, so the next unknown-commit answer ended a run that an answer had broken.
  await followNothing()
  const main = await octocat.request('GET /repos/{owner}/{repo}/git/ref/{ref}', {
    ...repo,
    ref: 'heads/main',
  })
  const sha = main.data.object.sha
  const row = await mergedDeployment(t, 'limited', sha)
  const { ctx: watched } = watchedContext()
  const runsPath = `/repos/acme/infra-specs/commits/${sha}/check-runs`
  const unknown = () =>
    sim.injectFault({
      method: 'GET',
      path: runsPath,
      status: 422,
      message: `No commit found for SHA: ${sha}`,
    })
  const start = Date.now()
  const at = (minutes: number) => new Date(start + minutes * 60_000)
  unknown()
  await reconcileDeployments(watched, at(0))
  unknown()
  await reconcileDeployments(watched, at(11))
  t.equal((await deployment(row.id)).github_etags?.commit_missing, 2)
  // The commit's check runs answer; its status read is then rate-limited.
  sim.injectFault({
    method: 'GET',
    path: `/repos/acme/infra-specs/commits/${sha}/status`,
    status: 403,
    retryAfter: 60,
  })
  const limited = await reconcileDeployments(watched, at(12))
  t.equal(limited.errors, 1)
  t.equal((await deployment(row.id)).github_etags?.commit_missing, undefined, 'the answer broke the run')
  unknown()
  await reconcileDeployments(watched, at(13))
  const etags = (await deployment(row.id)).github_etags
  t.equal(etags?.commit_missing, 1, 'a new run')
  t.notOk(etags?.commit_lost)
})

t.test('dropping the 404 count keeps the stored ETags', async (t) => {
  // A review's example: the count was dropped by storing the pass's ETags, read before a change
  // failed to apply, so every later pass got 304 and the change was never applied.
  const row = await openDeployment('etags', 99_997, 'deploy-hooks-etags')
  await recordReconciliation(db, row.id, { pull: 'W/"before"', pull_missing: 2 })
  await clearMissingCounts(db, row.id)
  t.same((await deployment(row.id)).github_etags, { pull: 'W/"before"' })
  await db.updateTable('deployments').set({ stage: 'closed' }).where('id', '=', row.id).execute()
})

t.test(
  'past APPLY_TIMEOUT_HOURS without a verdict a merged deployment stays merged, unfollowed',
  async (t) => {
    await db
      .updateTable('deployments')
      .set({ stage: 'closed' })
      .where('stage', 'in', ['pr_open', 'merged'])
      .execute()
    const old = await insertDeployment(db, {
      customer: 'hooks',
      env: 'old',
      instance_name: 'hooks-old-01',
      status: 'succeeded',
      pr_number: 1,
      branch: 'deploy-hooks-old',
      stage: 'merged',
      merged_at: new Date(Date.now() - (config.APPLY_TIMEOUT_HOURS + 1) * 3600_000),
      merge_commit_sha: 'a'.repeat(40),
    })
    const before = sim.ledger.count({ login: 'portico-bot' })
    const pass = await reconcileDeployments(ctx)
    t.equal(pass.checked, 0)
    t.equal(sim.ledger.count({ login: 'portico-bot' }) - before, 0, 'no GitHub call')
    t.equal((await deployment(old.id)).stage, 'merged')
  },
)

t.test('the maintenance task prunes deliveries past their retention', async (t) => {
  await recordWebhookDelivery(db, {
    delivery_id: 'old-delivery',
    event: 'ping',
    action: null,
    payload: '{}',
    received_at: new Date(Date.now() - 31 * 24 * 3600_000),
  })
  await recordWebhookDelivery(db, { delivery_id: 'new-delivery', event: 'ping', action: null, payload: '{}' })
  const factory = processors.maintenance
  if (!factory) return t.fail('no maintenance processor')
  const run = factory(ctx)
  const result = await run({ data: { task: 'prune-webhook-deliveries' } } as never)
  t.match(result, { pruned: 1 })
  t.notOk(await findWebhookDelivery(db, 'old-delivery'))
  t.ok(await findWebhookDelivery(db, 'new-delivery'))
})
