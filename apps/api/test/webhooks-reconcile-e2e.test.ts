// End to end with real processes and webhooks OFF: the API server and the worker (deploy and
// maintenance queues), the simulator, Postgres and Redis. The reconciler alone follows deploy pull
// requests to merged → applied / closed, and the simulator's ledger shows what it costs: an
// unchanged pull request costs 0 counted GitHub calls (304 Not Modified).
import { createOctokit } from '@portico/core'
import { createDb } from '@portico/db'
import { defaultSeed, type Seed } from '@portico/github-sim'
import { freePort, startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { deployments, httpClient, signInOverHttp, startPortico, until } from './e2e.js'

const port = await freePort()
// The simulator's App webhook points where nobody listens: no delivery reaches Portico.
const seed = structuredClone(defaultSeed) as Seed
const appSeed = seed.github_apps?.[0]
if (!appSeed) throw new Error('the default seed has no GitHub App')
appSeed.webhook = { url: `http://127.0.0.1:${await freePort()}/webhooks/github`, secret: 'unused' }
const { sim, env, tokenOf } = await startTestSimulator(t, { seed })
const config = await testConfig(t, env)
const db = createDb(config)
t.teardown(() => db.destroy())
const octocat = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
const repo = { owner: 'acme', repo: 'infra-specs' }

const { base } = await startPortico(t, {
  name: 'webhooks-reconcile-e2e',
  config,
  env,
  port,
  overrides: {
    LOG_LEVEL: 'info',
    GITHUB_WRITE_SPACING_MS: '20',
    DEPLOY_WAIT_MS: '60000',
    // No webhook secret and no webhooks queue: only the reconciler, every 10 s.
    WORKER_QUEUES: 'deploy,maintenance',
    RECONCILE_INTERVAL_SECONDS: '10',
  },
})
const client = httpClient(base)
const { call } = client
await signInOverHttp(client, 'octocat')

const { view, waitStage, deployPod } = deployments(client)

const mergePr = async (n: number) => (await octocat.rest.pulls.merge({ ...repo, pull_number: n })).data.sha

const PULL_ROUTE = 'GET /repos/{owner}/{repo}/pulls/{pull_number}'
const pullReads = (n: number) =>
  sim.ledger
    .entries({ login: 'portico-bot', route: PULL_ROUTE })
    .filter((e) => e.path.endsWith(`/pulls/${n}`))

t.test('webhooks are off: POST /webhooks/github answers 503 WEBHOOKS_NOT_CONFIGURED', async (t) => {
  const res = await call('POST', '/webhooks/github', { zen: 'x' })
  t.equal(res.status, 503)
  t.equal(res.json().code, 'WEBHOOKS_NOT_CONFIGURED')
})

t.test('reconciler: unchanged PR costs 0 counted calls; merge → merged → applied', async (t) => {
  const deployed = await deployPod('rcapply')
  const n = Number(deployed.pr_number)
  // Three passes see the open pull request: the first reads it, the next ones get 304s.
  const reads = await until(
    async () => {
      const r = pullReads(n)
      return r.length >= 3 ? r : undefined
    },
    120_000,
    'three reconciler passes',
  )
  t.equal(reads[0]?.counted, true, 'the first read is counted (no ETag yet)')
  for (const later of reads.slice(1)) {
    t.equal(later.status, 304, 'later reads: 304 Not Modified')
    t.equal(later.conditional, true)
    t.equal(later.counted, false, 'not counted against the rate limit')
  }
  t.equal((await view(deployed.id)).stage, 'pr_open')

  const sha = await mergePr(n)
  const applied = await waitStage(deployed.id, ['applied', 'apply_failed'], 'the reconciler to see the apply')
  t.equal(applied.stage, 'applied')
  t.equal(applied.merge_commit_sha, sha)
  t.ok(applied.merged_at)
  t.same([applied.checks[0]?.name, applied.checks[0]?.conclusion], ['apply', 'success'])
  const counted = sim.ledger.entries({ login: 'portico-bot', counted: true })
  const checkReads = counted.filter((e) => e.path.includes(`/commits/${sha}/`))
  t.ok(checkReads.length >= 2, `the merge commit's checks were read (${checkReads.length} counted calls)`)
  t.equal(
    counted.filter((e) => e.route === PULL_ROUTE && e.path.endsWith(`/pulls/${n}`)).length,
    2,
    'the pull request: counted once open, once when it changed',
  )
})

t.test('reconciler: a failing check → apply_failed with its URL; a closed PR → closed', async (t) => {
  sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'failure', name: 'apply' })
  t.teardown(() => sim.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'success' }))
  const failing = await deployPod('rcfail')
  const closing = await deployPod('rcclose')
  await mergePr(Number(failing.pr_number))
  await octocat.rest.pulls.update({ ...repo, pull_number: Number(closing.pr_number), state: 'closed' })
  const failed = await waitStage(failing.id, ['applied', 'apply_failed'], 'the failing apply')
  t.equal(failed.stage, 'apply_failed')
  t.equal(failed.checks[0]?.conclusion, 'failure')
  t.match(failed.checks[0]?.url, /^https?:\/\//)
  t.equal((await waitStage(closing.id, ['closed'], 'the closed PR')).stage, 'closed')
})
