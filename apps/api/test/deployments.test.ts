import { createOctokit, deployJobId } from '@portico/core'
import { findDeployment } from '@portico/db'
import { startTestSimulator } from '@portico/testing'
import { processors, startWorker } from '@portico/worker'
import { pino } from 'pino'
import t from 'tap'
import { parse } from 'yaml'
import { build, signIn, writeHeaders } from './helper.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const app = await build(t, { ...env, GITHUB_WRITE_SPACING_MS: '20', DEPLOY_WAIT_MS: '15000' })
const worker = await startWorker(
  { ...app.config, workerQueues: ['deploy'] },
  processors,
  pino({ level: 'silent' }),
)
t.teardown(() => worker.close())
const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
const repo = { owner: 'acme', repo: 'infra-specs' }
const octocat = await signIn(app, sim, 'octocat')

const body = (customer: string, env: string, extra: Record<string, unknown> = {}) => ({
  customer,
  env,
  spec: { instance_name: `${customer}-${env}-05`, waf_enabled: true },
  ...extra,
})
const post = (payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/api/pod', payload: payload as object, headers })

t.test('POST /api/pod validation: every message, nothing queued', async (t) => {
  const cases: [unknown, string, string][] = [
    [{ env: 'dev', spec: { instance_name: 'x' } }, 'VALIDATION_ERROR', 'Missing required field: customer'],
    [{ customer: 'a', spec: { instance_name: 'x' } }, 'VALIDATION_ERROR', 'Missing required field: env'],
    [{ customer: 'a', env: 'dev' }, 'VALIDATION_ERROR', 'Missing required field: spec'],
    [
      { customer: 'a', env: 'dev', spec: {} },
      'VALIDATION_ERROR',
      'Missing required spec field: instance_name',
    ],
    [
      body('../etc', 'dev'),
      'VALIDATION_ERROR',
      'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)',
    ],
    [
      body('alpha', 'dev/..'),
      'VALIDATION_ERROR',
      'environment contains invalid characters (use a-z, A-Z, 0-9, -, _ only)',
    ],
    [body('a'.repeat(51), 'dev'), 'VALIDATION_ERROR', 'customer must be 1-50 characters'],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'Bad_Name' } },
      'VALIDATION_ERROR',
      'instance_name contains invalid characters (use a-z, 0-9, - only)',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: '-edge' } },
      'VALIDATION_ERROR',
      'instance_name must not start or end with a hyphen',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'x'.repeat(31) } },
      'VALIDATION_ERROR',
      'instance_name must be 1-30 characters',
    ],
    [body('alpha', 'dev', { mode: 'upsert' }), 'VALIDATION_ERROR', 'mode must be "new" or "edit"'],
    [[1, 2], 'INVALID_JSON', 'Request body must be JSON'],
  ]
  for (const [payload, code, message] of cases) {
    const res = await post(payload)
    t.equal(res.statusCode, 400, message)
    t.match(res.json(), { code, message }, message)
  }
  const raw = [
    { 'content-type': 'application/json', payload: '{"customer": "alpha",' },
    { 'content-type': 'text/plain', payload: 'customer=alpha' },
    { 'content-type': 'application/x-www-form-urlencoded', payload: 'customer=alpha&env=dev' },
    { 'content-type': 'application/json', payload: '' },
  ]
  for (const { payload, ...headers } of raw) {
    const res = await app.inject({ method: 'POST', url: '/api/pod', payload, headers })
    t.equal(res.statusCode, 400, headers['content-type'])
    t.match(res.json(), { code: 'INVALID_JSON', message: 'Request body must be JSON' })
  }
  t.equal(await worker.ctx.queues.deploy.count(), 0, 'nothing queued')
  t.same(await app.db.selectFrom('deployments').selectAll().execute(), [], 'no rows')
})

t.test('mode "new" on an existing pod is 409 POD_EXISTS', async (t) => {
  const res = await post(body('alpha', 'dev', { mode: 'new' }), writeHeaders(app, octocat.cookie))
  t.equal(res.statusCode, 409)
  t.match(res.json(), { code: 'POD_EXISTS', message: 'Pod already exists: alpha/dev' })
})

t.test('a signed-in deploy: 201 with the pull request, opened as the user', async (t) => {
  sim.ledger.clear()
  const res = await post(
    body('epsilon', 'stg', { mode: 'new', commit_message: 'New pod for epsilon' }),
    writeHeaders(app, octocat.cookie),
  )
  t.equal(res.statusCode, 201, res.body)
  const created = res.json()
  t.match(created, {
    deployment_id: /^[0-9a-f-]{36}$/,
    branch: /^deploy-epsilon-stg-\d+$/,
    pr_url: /\/acme\/infra-specs\/pull\/\d+$/,
    pr_number: Number,
  })
  const pr = await bot.rest.pulls.get({ ...repo, pull_number: created.pr_number })
  t.equal(pr.data.user?.login, 'octocat', 'the pull request is the user’s')
  t.equal(pr.data.title, 'Deploy: epsilon/stg')
  const file = await bot.rest.repos.getContent({
    ...repo,
    path: 'infra/epsilon/stg/spec.yml',
    ref: created.branch,
  })
  t.match(parse(Buffer.from((file.data as { content: string }).content, 'base64').toString()), {
    kind: 'Pod',
    spec: {
      compute: { instance_name: 'epsilon-stg-05', instance_type: 't4g.nano' },
      security: { waf: { enabled: true } },
    },
  })
  const writes = sim.ledger.entries({ kind: 'api' }).filter((e) => e.method !== 'GET')
  t.equal(writes.length, 3, 'branch, file, pull request')

  const row = await findDeployment(app.db, created.deployment_id)
  t.equal(row?.encrypted_token, null, 'the token is wiped')
  t.equal(row?.token_source, 'user')
  const job = await worker.ctx.queues.deploy.getJob(deployJobId(created.deployment_id))
  t.same(job?.data, { deploymentId: created.deployment_id }, 'job data holds the id only')

  const status = await app.inject({ url: `/api/deployments/${created.deployment_id}` })
  t.equal(status.statusCode, 200)
  t.match(status.json(), {
    id: created.deployment_id,
    customer: 'epsilon',
    env: 'stg',
    status: 'succeeded',
    branch: created.branch,
    pr_url: created.pr_url,
    pr_number: created.pr_number,
    commit_message: 'New pod for epsilon',
    error: null,
    created_at: String,
    finished_at: String,
  })
  t.notOk('encrypted_token' in status.json(), 'never the token')
})

t.test('a slow deploy answers 202 with a status URL', async (t) => {
  const slow = await build(t, { ...env, GITHUB_WRITE_SPACING_MS: '20', DEPLOY_WAIT_MS: '0' })
  // A separate app has its own database and queue prefix, hence its own worker.
  const slowWorker = await startWorker(
    { ...slow.config, workerQueues: ['deploy'] },
    processors,
    pino({ level: 'silent' }),
  )
  t.teardown(() => slowWorker.close())
  const res = await slow.inject({ method: 'POST', url: '/api/pod', payload: body('zeta', 'dev') })
  t.equal(res.statusCode, 202)
  const accepted = res.json()
  t.match(accepted, { deployment_id: String, status: /^(queued|running)$/ })
  t.equal(accepted.status_url, `/api/deployments/${accepted.deployment_id}`)
  let state = ''
  for (let i = 0; i < 200 && state !== 'succeeded'; i++) {
    await new Promise((r) => setTimeout(r, 50))
    state = (await slow.inject({ url: accepted.status_url })).json().status
  }
  t.equal(state, 'succeeded')
})

t.test('two concurrent deploys of one pod: one pull request, the second gets the running one', async (t) => {
  const before = (await bot.rest.pulls.list({ ...repo, state: 'all', per_page: 100 })).data.length
  sim.setLatency(150) // keep the first deploy in flight while the second arrives
  t.teardown(() => sim.setLatency(0))
  const [a, b] = await Promise.all([post(body('beta', 'dev')), post(body('beta', 'dev'))])
  const statuses = [a.statusCode, b.statusCode].sort()
  t.same(statuses, [201, 202])
  const first = a.statusCode === 201 ? a.json() : b.json()
  const second = a.statusCode === 202 ? a.json() : b.json()
  t.equal(second.deployment_id, first.deployment_id, 'the running deployment')
  t.equal(second.status_url, `/api/deployments/${first.deployment_id}`)
  const after = (await bot.rest.pulls.list({ ...repo, state: 'all', per_page: 100 })).data
  t.equal(after.length, before + 1, 'one pull request')
  t.equal(
    await app.db
      .selectFrom('deployments')
      .where('customer', '=', 'beta')
      .select('id')
      .execute()
      .then((r) => r.length),
    1,
  )
})

t.test("a failed deploy answers with the job's error and status", async (t) => {
  const hubot = await signIn(app, sim, 'hubot') // read-only collaborator
  const res = await post(body('gamma', 'dev'), writeHeaders(app, hubot.cookie))
  t.equal(res.statusCode, 404)
  t.match(res.json(), { code: 'SPECS_REPO_NOT_FOUND', deployment_id: String })
  const status = await app.inject({ url: `/api/deployments/${res.json().deployment_id}` })
  t.match(status.json(), { status: 'failed', error: { code: 'SPECS_REPO_NOT_FOUND', status: 404 } })

  // The pod is free again: a deploy with write access goes through.
  const ok = await post(body('gamma', 'dev'))
  t.equal(ok.statusCode, 201)
})

t.test('GET /api/deployments: recent history, filtered, validated', async (t) => {
  const all = await app.inject({ url: '/api/deployments' })
  t.equal(all.statusCode, 200)
  const list = all.json().deployments
  t.ok(list.length >= 4)
  const times = list.map((d: { created_at: string }) => Date.parse(d.created_at))
  t.same(
    times,
    [...times].sort((x: number, y: number) => y - x),
    'newest first',
  )
  const gamma = await app.inject({ url: '/api/deployments?customer=gamma&env=dev' })
  t.same(
    gamma.json().deployments.map((d: { status: string }) => d.status),
    ['succeeded', 'failed'],
  )
  t.equal((await app.inject({ url: '/api/deployments?customer=gamma&limit=1' })).json().deployments.length, 1)
  const bad = await app.inject({ url: '/api/deployments?customer=..%2Fx' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().message, 'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)')
  for (const id of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) {
    const missing = await app.inject({ url: `/api/deployments/${id}` })
    t.equal(missing.statusCode, 404)
    t.equal(missing.json().code, 'DEPLOYMENT_NOT_FOUND')
  }
})

t.test('an in-flight deployment whose job is gone no longer blocks its pod', async (t) => {
  const stale = await app.db
    .insertInto('deployments')
    .values({
      customer: 'theta',
      env: 'dev',
      instance_name: 'theta-dev-01',
      created_at: new Date(Date.now() - 300_000),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
  const res = await post(body('theta', 'dev'))
  t.equal(res.statusCode, 201, res.body)
  t.not(res.json().deployment_id, stale.id)
  t.match(await findDeployment(app.db, stale.id), { status: 'failed', error_code: 'DEPLOY_ABANDONED' })

  // A recent in-flight row is left alone (its job may be about to be queued).
  const fresh = await app.db
    .insertInto('deployments')
    .values({ customer: 'theta', env: 'stg', instance_name: 'theta-stg-01' })
    .returningAll()
    .executeTakeFirstOrThrow()
  const busy = await post(body('theta', 'stg'))
  t.equal(busy.statusCode, 202)
  t.equal(busy.json().deployment_id, fresh.id)
})

t.test('without a queue the request fails fast and leaves the pod free', async (t) => {
  const noRedis = await build(t, { ...env, REDIS_URL: 'redis://127.0.0.1:1' })
  const res = await noRedis.inject({ method: 'POST', url: '/api/pod', payload: body('eta', 'dev') })
  t.ok(res.statusCode === 503, res.body)
  const rows = await noRedis.db.selectFrom('deployments').selectAll().where('customer', '=', 'eta').execute()
  t.ok(
    rows.every((r) => r.status === 'failed'),
    'no row stays in flight',
  )
})
