import { createOctokit, deployJobId, encrypt } from '@portico/core'
import { type DeploymentRow, findDeployment, insertDeployment, type NewDeployment } from '@portico/db'
import { refusalFault } from '@portico/github-sim'
import { deployJobOptions, specDocument } from '@portico/pods'
import { startTestSimulator, testConfig } from '@portico/testing'
import type { JobsOptions } from 'bullmq'
import { sql } from 'kysely'
import { pino } from 'pino'
import t from 'tap'
import { parse } from 'yaml'
import { WritePacer } from '../src/deploy/write-pacer.js'
import { startWorker } from '../src/lib.js'
import { deployProcessor } from '../src/processors/deploy.processor.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const config = await testConfig(t, { ...env, GITHUB_WRITE_SPACING_MS: '20' })
const runtime = await startWorker(
  { ...config, workerQueues: ['deploy'] },
  { deploy: deployProcessor },
  pino({ level: 'silent' }),
)
t.teardown(() => runtime.close())
const { db, queues } = runtime.ctx
const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
const repo = { owner: 'acme', repo: 'infra-specs' }

async function deploy(
  values: Partial<NewDeployment> & { customer: string; env: string },
  jobOpts: JobsOptions = {},
): Promise<DeploymentRow> {
  const row = await insertDeployment(db, { instance_name: `${values.customer}-${values.env}-09`, ...values })
  await queues.deploy.add(
    'deploy',
    { deploymentId: row.id },
    { ...deployJobOptions(deployJobId(row.id)), ...jobOpts },
  )
  return row
}

/**
 * Waits until the deployment has finished (succeeded or failed) and BullMQ has recorded the
 * job's outcome: the row is written just before the job completes. `timeoutMs` only ends a wait
 * that would otherwise hang: two suites at once on two cores made two paced deploys take over 20 s.
 */
async function settled(id: string, timeoutMs = 120_000): Promise<DeploymentRow> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const row = await findDeployment(db, id)
    const jobState = await queues.deploy.getJobState(deployJobId(id))
    const jobDone = jobState === 'completed' || jobState === 'failed' || jobState === 'unknown'
    if (row && (row.status === 'succeeded' || row.status === 'failed') && jobDone) return row
    if (Date.now() > until) throw new Error(`deployment ${id} still ${row?.status}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function fileAt(path: string, ref: string): Promise<string> {
  const res = await bot.rest.repos.getContent({ ...repo, path, ref })
  return Buffer.from((res.data as { content: string }).content, 'base64').toString('utf8')
}

async function commitMessage(branch: string): Promise<string> {
  const ref = await bot.rest.git.getRef({ ...repo, ref: `heads/${branch}` })
  return (await bot.rest.git.getCommit({ ...repo, commit_sha: ref.data.object.sha })).data.message
}

const openPrs = async (branch: string) =>
  (await bot.rest.pulls.list({ ...repo, head: `acme:${branch}`, state: 'all' })).data

t.test('a new pod: branch, full spec document and pull request, in 5 GitHub calls', async (t) => {
  sim.ledger.clear()
  const row = await deploy({
    customer: 'delta',
    env: 'dev',
    instance_name: 'delta-dev-01',
    waf_enabled: true,
  })
  const done = await settled(row.id)
  t.equal(done.status, 'succeeded')
  t.equal(done.branch, `deploy-delta-dev-${row.id}`, 'the branch names the deployment')
  t.equal(done.encrypted_token, null)
  t.equal(done.error_code, null)
  const calls = sim.ledger.entries({ kind: 'api' })
  t.same(
    calls.map((c) => `${c.route} ${c.status}`),
    [
      'GET /repos/{owner}/{repo}/git/ref/{ref} 200',
      'POST /repos/{owner}/{repo}/git/refs 201',
      'GET /repos/{owner}/{repo}/contents/{path} 404',
      'PUT /repos/{owner}/{repo}/contents/{path} 201',
      'POST /repos/{owner}/{repo}/pulls 201',
    ],
    'two reads and three writes',
  )
  t.ok(
    calls.every((c) => c.login === 'portico-bot'),
    'a service request acts with GH_TOKEN',
  )
  const writes = calls.filter((c) => c.method !== 'GET').map((c) => Date.parse(c.at))
  for (let i = 1; i < writes.length; i++) {
    t.ok((writes[i] as number) - (writes[i - 1] as number) >= 15, 'writes are spaced')
  }

  const text = await fileAt('infra/delta/dev/spec.yml', done.branch!)
  t.same(
    parse(text),
    specDocument({ customer: 'delta', env: 'dev', instance_name: 'delta-dev-01', waf_enabled: true }),
  )
  const [pr, ...more] = await openPrs(done.branch!)
  t.equal(more.length, 0)
  t.match(pr, {
    number: done.pr_number,
    html_url: done.pr_url,
    title: 'Deploy: delta/dev',
    state: 'open',
    base: { ref: 'main' },
    head: { ref: done.branch },
  })
  t.match(pr?.body, new RegExp(`^Automated deployment for delta/dev\\n[\\s\\S]*deploy-delta-dev-${row.id}`))
  t.equal(await commitMessage(done.branch!), 'Deploy delta/dev', 'default commit message')
})

t.test("editing acts with the requester's token and keeps extra keys, comments and order", async (t) => {
  const before = await fileAt('infra/gamma/prd/spec.yml', 'main')
  sim.ledger.clear()
  const row = await deploy({
    customer: 'gamma',
    env: 'prd',
    instance_name: 'gamma-prd-02',
    waf_enabled: false,
    mode: 'edit',
    commit_message: 'Resize gamma prd',
    token_source: 'user',
    encrypted_token: encrypt(config.keyring, tokenOf('octocat')),
  })
  const done = await settled(row.id)
  t.equal(done.status, 'succeeded')
  t.equal(done.encrypted_token, null, 'the stored token is wiped')
  t.ok(
    sim.ledger.entries({ kind: 'api' }).every((c) => c.login === 'octocat'),
    'every call acted as the requester',
  )
  const after = await fileAt('infra/gamma/prd/spec.yml', done.branch!)
  t.equal(
    after,
    before
      .replace('instance_name: gamma-prd-01', 'instance_name: gamma-prd-02')
      .replace('enabled: true', 'enabled: false'),
  )
  t.match(after, /disk_gb: 20 # bumped after/)
  t.match(after, /^# Pod spec for gamma \(prd\)/)
  t.equal(await commitMessage(done.branch!), 'Resize gamma prd')
})

t.test('a retry after a crash between branch and pull request yields one pull request', async (t) => {
  sim.injectFault({ method: 'POST', path: '/repos/acme/infra-specs/pulls', status: 502, times: 1 })
  sim.ledger.clear()
  const row = await deploy(
    { customer: 'alpha', env: 'dev', instance_name: 'alpha-dev-07' },
    { backoff: { type: 'fixed', delay: 50 } },
  )
  const done = await settled(row.id)
  t.equal(done.status, 'succeeded')
  const prs = await openPrs(done.branch!)
  t.equal(prs.length, 1)
  t.equal(prs[0]?.number, done.pr_number)
  const routes = sim.ledger.entries({ kind: 'api' }).map((c) => `${c.route} ${c.status}`)
  t.same(
    routes.filter((r) => r.startsWith('POST /repos/{owner}/{repo}/git/refs')),
    ['POST /repos/{owner}/{repo}/git/refs 201', 'POST /repos/{owner}/{repo}/git/refs 422'],
    'the second attempt reuses the branch',
  )
  t.equal(routes.filter((r) => r.startsWith('PUT')).length, 1, 'the unchanged file is not rewritten')

  // A redelivery after success (e.g. the row was reset) finds the open pull request.
  await db
    .updateTable('deployments')
    .set({ status: 'queued', pr_url: null, pr_number: null })
    .where('id', '=', row.id)
    .execute()
  await queues.deploy.add(
    'deploy',
    { deploymentId: row.id },
    deployJobOptions(`${deployJobId(row.id)}-again`),
  )
  const again = await settled(row.id)
  t.equal(again.status, 'succeeded', again.error_message ?? '')
  t.equal(again.pr_number, done.pr_number, 'the existing pull request is returned')
  t.equal((await openPrs(done.branch!)).length, 1, 'no duplicate')
})

t.test('a 403 with retry-after delays the job, which then succeeds', async (t) => {
  sim.injectFault({ method: 'POST', path: '/repos/acme/infra-specs/git/refs', status: 403, retryAfter: 1 })
  sim.ledger.clear()
  const row = await deploy({ customer: 'beta', env: 'stg' })
  const done = await settled(row.id)
  t.equal(done.status, 'succeeded')
  const refs = sim.ledger.entries({ method: 'POST', route: 'POST /repos/{owner}/{repo}/git/refs' })
  t.same(
    refs.map((c) => c.status),
    [403, 201],
  )
  t.ok(Date.parse(refs[1]!.at) - Date.parse(refs[0]!.at) >= 1000, 'waited the retry-after')
  const job = await queues.deploy.getJob(deployJobId(row.id))
  t.equal(job?.attemptsMade, 1, 'one attempt: the delay used none')
  t.equal(await job?.getState(), 'completed')
})

t.test('permanent failures end the job at once and record code and status', async (t) => {
  const readOnly = await deploy({
    customer: 'beta',
    env: 'dev',
    token_source: 'user',
    encrypted_token: encrypt(config.keyring, tokenOf('hubot')),
  })
  const failed = await settled(readOnly.id)
  t.match(failed, {
    status: 'failed',
    error_code: 'SPECS_REPO_NOT_FOUND',
    error_status: 404,
    encrypted_token: null,
  })
  t.notOk(failed.error_message?.includes('ghp_'), 'no token in the message')
  const job = await queues.deploy.getJob(deployJobId(readOnly.id))
  t.equal(job?.attemptsMade, 1, 'not retried')
  t.equal(await job?.getState(), 'failed')

  sim.addToken('octocat', 'gho_revokedforthedeploytest000000000001', { scopes: ['repo'] })
  sim.revokeToken('gho_revokedforthedeploytest000000000001')
  const revoked = await deploy({
    customer: 'beta',
    env: 'prd',
    token_source: 'user',
    encrypted_token: encrypt(config.keyring, 'gho_revokedforthedeploytest000000000001'),
  })
  t.match(await settled(revoked.id), {
    status: 'failed',
    error_code: 'GITHUB_UNAUTHORIZED',
    error_status: 401,
  })
})

t.test(
  'refusals by cause: an archived repository or a ruleset fails once; an SSO policy says how to fix it',
  async (t) => {
    sim.injectFault(refusalFault('archived', { method: 'POST', path: '/repos/acme/infra-specs/git/refs' }))
    const archived = await deploy({ customer: 'gamma', env: 'dev' })
    t.match(await settled(archived.id), {
      status: 'failed',
      error_code: 'REPOSITORY_ARCHIVED',
      error_status: 403,
      error_message: /archived on GitHub and read-only/,
    })
    t.equal((await queues.deploy.getJob(deployJobId(archived.id)))?.attemptsMade, 1, 'not retried')

    sim.injectFault(
      refusalFault('sso_required', { method: 'POST', path: '/repos/acme/infra-specs/git/refs' }),
    )
    const sso = await deploy({ customer: 'gamma', env: 'stg' })
    t.match(await settled(sso.id), {
      status: 'failed',
      error_code: 'GITHUB_SSO_REQUIRED',
      error_status: 403,
      error_message: /SAML enforcement.*https:\/\/github\.com\/orgs\/acme\/sso/,
    })

    sim.injectFault(
      refusalFault('rule_violation', { method: 'POST', path: '/repos/acme/infra-specs/git/refs' }),
    )
    const ruled = await deploy({ customer: 'gamma', env: 'prd' })
    t.match(await settled(ruled.id), {
      status: 'failed',
      error_code: 'GITHUB_RULE_VIOLATION',
      error_status: 409,
      error_message: /Cannot create ref due to creations being restricted/,
    })
    t.equal((await queues.deploy.getJob(deployJobId(ruled.id)))?.attemptsMade, 1, 'a rule is not retried')
  },
)

t.test('a malformed spec is not overwritten: the deploy fails with 422', async (t) => {
  await bot.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: 'infra/broken/dev/spec.yml',
    message: 'broken spec',
    content: Buffer.from('spec: [unclosed\n').toString('base64'),
    branch: 'main',
  })
  sim.ledger.clear()
  const row = await deploy({ customer: 'broken', env: 'dev' })
  const done = await settled(row.id)
  t.match(done, { status: 'failed', error_code: 'INVALID_SPEC', error_status: 422 })
  t.match(done.error_message, /^Spec for broken\/dev is not valid/)
  // The branch was created before the spec was read: a failed deploy removes it again.
  const branch = `deploy-broken-dev-${row.id}`
  t.same(
    sim.ledger
      .entries({ kind: 'api' })
      .filter((c) => c.route.includes('/git/refs'))
      .map((c) => `${c.method} ${c.status}`),
    ['POST 201', 'DELETE 204'],
  )
  const gone = await bot.rest.git.getRef({ ...repo, ref: `heads/${branch}` }).catch((err: unknown) => err)
  t.equal((gone as { status?: number }).status, 404, 'the branch is gone')
})

t.test('two pods whose names join to the same string get their own branch and pull request', async (t) => {
  // "a-b" + "c" and "a" + "b-c" both join to "a-b-c"; created in the same second.
  const first = await deploy({ customer: 'join-a', env: 'b-c' })
  const second = await deploy({ customer: 'join-a-b', env: 'c' })
  const [one, two] = await Promise.all([settled(first.id), settled(second.id)])
  t.equal(one.status, 'succeeded', one.error_message ?? '')
  t.equal(two.status, 'succeeded', two.error_message ?? '')
  t.not(one.branch, two.branch)
  t.not(one.pr_number, two.pr_number)
  t.match(await fileAt('infra/join-a/b-c/spec.yml', one.branch!), /join-a-b-c-09/)
  t.match(await fileAt('infra/join-a-b/c/spec.yml', two.branch!), /join-a-b-c-09/)
})

t.test('a database error inside the deploy job is reported as one, not as a GitHub failure', async (t) => {
  // A real Postgres error raised while the job records its branch.
  await sql`CREATE OR REPLACE FUNCTION portico_test_refuse_branch() RETURNS trigger AS $$
    BEGIN
      IF NEW.customer = 'dbfail' AND NEW.branch IS NOT NULL AND OLD.branch IS NULL THEN
        RAISE EXCEPTION 'simulated database failure';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql`.execute(db)
  await sql`CREATE TRIGGER portico_test_refuse_branch BEFORE UPDATE ON deployments
    FOR EACH ROW EXECUTE FUNCTION portico_test_refuse_branch()`.execute(db)
  t.teardown(async () => {
    await sql`DROP TRIGGER IF EXISTS portico_test_refuse_branch ON deployments`.execute(db)
  })
  const row = await deploy(
    { customer: 'dbfail', env: 'dev' },
    { attempts: 2, backoff: { type: 'fixed', delay: 50 } },
  )
  const done = await settled(row.id)
  t.match(done, { status: 'failed', error_code: 'DATABASE_ERROR', error_status: 503 })
  t.notMatch(done.error_code, /^GITHUB_/)
  t.notMatch(done.error_message, /simulated/, 'internals stay out of the stored message')
})

t.test('transient failures on the last attempt are recorded as 503', async (t) => {
  sim.injectFault({ method: 'GET', path: /\/git\/ref\//, status: 500, times: 2 })
  const row = await deploy(
    { customer: 'alpha', env: 'stg' },
    { attempts: 2, backoff: { type: 'fixed', delay: 50 } },
  )
  t.match(await settled(row.id), { status: 'failed', error_code: 'GITHUB_UNAVAILABLE', error_status: 503 })
})

t.test('the pacer spaces writes with one token across callers', async (t) => {
  const pacer = new WritePacer(runtime.ctx.redis, config.REDIS_PREFIX, 200)
  const stamps: number[] = []
  const start = Date.now()
  await Promise.all([1, 2, 3].map(() => pacer.write('some-token', async () => stamps.push(Date.now()))))
  stamps.sort((a, b) => a - b)
  // Slots are 200 ms apart from the first reservation: the k-th write never runs before
  // start + k × 200 ms (a busy machine can only make it later, never earlier).
  t.ok(stamps[1]! >= start + 190 && stamps[2]! >= start + 390, 'no write before its slot')
  await pacer.pushBack('other-token', Date.now() + 30_000)
  await t.rejects(
    pacer.write('other-token', async () => 1),
    { name: 'PacingDelay' },
    'long waits delay the job',
  )
  const keys = await runtime.ctx.redis.keys(`${config.REDIS_PREFIX}:github-writes:*`)
  t.ok(keys.length >= 2)
  t.notOk(
    keys.some((k) => k.includes('token')),
    'keys hold a hash, not the token',
  )
})
