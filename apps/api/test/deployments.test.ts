import { createOctokit, deployJobId } from '@portico/core'
import { findDeployment } from '@portico/db'
import { startTestSimulator } from '@portico/testing'
import { processors, startWorker } from '@portico/worker'
import { pino } from 'pino'
import t from 'tap'
import { parse } from 'yaml'
import { IDEMPOTENCY_PENDING_SECONDS } from '../src/plugins/app/idempotency.js'
import { validatorByPart } from '../src/server-options.js'
import { build, signIn, writeHeaders } from './helper.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
// A generous wait: on a loaded machine one deploy can take several seconds.
const app = await build(t, { ...env, GITHUB_WRITE_SPACING_MS: '20', DEPLOY_WAIT_MS: '60000' })
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
/** `POST /api/pod`, as octocat unless `headers` say otherwise. */
const post = (payload: unknown, headers: Record<string, string> = writeHeaders(app, octocat.cookie)) =>
  app.inject({ method: 'POST', url: '/api/pod', payload: payload as object, headers })
const inFlightRow = (customer: string, env: string, instance_name: string, waf_enabled = false) =>
  app.db
    .insertInto('deployments')
    .values({ customer, env, instance_name, waf_enabled })
    .returningAll()
    .executeTakeFirstOrThrow()

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
    [body('../etc', 'dev'), 'VALIDATION_ERROR', 'customer contains path traversal attempt'],
    [body('alpha', 'dev/..'), 'VALIDATION_ERROR', 'environment contains path traversal attempt'],
    [body('alpha', 'a\\b'), 'VALIDATION_ERROR', 'environment contains path traversal attempt'],
    [
      body('al.pha', 'dev'),
      'VALIDATION_ERROR',
      'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)',
    ],
    [body('a'.repeat(51), 'dev'), 'VALIDATION_ERROR', 'customer must be 1-50 characters'],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'Bad_Name' } },
      'VALIDATION_ERROR',
      'instance_name must be lowercase letters, numbers, and hyphens only (no uppercase, no underscores, no spaces)',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'has space' } },
      'VALIDATION_ERROR',
      'instance_name must be lowercase letters, numbers, and hyphens only (no uppercase, no underscores, no spaces)',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: '-edge' } },
      'VALIDATION_ERROR',
      'instance_name cannot start or end with hyphen',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'edge-' } },
      'VALIDATION_ERROR',
      'instance_name cannot start or end with hyphen',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'x'.repeat(31) } },
      'VALIDATION_ERROR',
      'instance_name must be 1-30 characters',
    ],
    [body('alpha', 'dev', { mode: 'upsert' }), 'VALIDATION_ERROR', 'mode must be "new" or "edit"'],
    // A new user's example: a misspelt `waf` was dropped and the production pod deployed with its WAF off.
    [
      { customer: 'gamma', env: 'prd', spec: { instance_name: 'gamma-prd-02', waf: true } },
      'VALIDATION_ERROR',
      'Unknown spec field: "waf" (a deploy sets instance_name and waf_enabled)',
    ],
    [
      body('alpha', 'dev', { commit_mesage: 'typo' }),
      'VALIDATION_ERROR',
      'Unknown field: "commit_mesage" (a deploy takes customer, env, spec, commit_message and mode)',
    ],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'x', waf_enabled: 'yes' } },
      'VALIDATION_ERROR',
      'waf_enabled must be true or false',
    ],
    [[1, 2], 'INVALID_JSON', 'Request body must be JSON'],
  ]
  for (const [payload, code, message] of cases) {
    const res = await post(payload)
    t.equal(res.statusCode, 400, message)
    t.same(res.json(), { statusCode: 400, code, error: message, message }, message)
  }
  const raw = [
    { 'content-type': 'application/json', payload: '{"customer": "alpha",' },
    { 'content-type': 'text/plain', payload: 'customer=alpha' },
    { 'content-type': 'application/x-www-form-urlencoded', payload: 'customer=alpha&env=dev' },
    { 'content-type': 'application/json', payload: '' },
    { 'content-type': 'application/json; charset=utf-16', payload: '{"customer":"alpha"}' },
    { 'content-type': 'application/json', payload: '{"customer":"\\udc00"}' },
    // Content-types Fastify cannot read are refused before any parser: still the contract's answer.
    { 'content-type': 'json', payload: '{"customer":"alpha"}' },
    { 'content-type': 'application/json,text/plain', payload: '{"customer":"alpha"}' },
  ]
  for (const { payload, ...headers } of raw) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/pod',
      payload,
      headers: { ...headers, ...writeHeaders(app, octocat.cookie) },
    })
    t.equal(res.statusCode, 400, headers['content-type'])
    t.match(res.json(), { code: 'INVALID_JSON', message: 'Request body must be JSON' })
  }
  // Prototype poisoning: JSON, but refused with its own code (Fastify's default parser refuses it too).
  const spec = '"spec":{"instance_name":"edge","waf_enabled":false}'
  for (const payload of [
    `{"customer":"alpha","env":"dev",${spec},"__proto__":{"mode":"new"}}`,
    `{"customer":"alpha","env":"dev","spec":{"instance_name":"edge","__proto__":{"waf_enabled":true}}}`,
    `{"customer":"alpha","env":"dev",${spec},"constructor":{"prototype":{"mode":"new"}}}`,
  ]) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/pod',
      payload,
      headers: { 'content-type': 'application/json', ...writeHeaders(app, octocat.cookie) },
    })
    t.equal(res.statusCode, 400, payload)
    t.match(res.json(), { code: 'UNSAFE_JSON_KEY' }, payload)
  }
  // The reviewer's example: hashed for the Idempotency-Key, 6,000 levels overflowed the stack (a 500).
  const deep = await app.inject({
    method: 'POST',
    url: '/api/pod',
    payload: `{"customer":"alpha","env":"dev",${spec},"z":${'['.repeat(6000)}${']'.repeat(6000)}}`,
    headers: {
      'content-type': 'application/json',
      'idempotency-key': 'deep-body',
      ...writeHeaders(app, octocat.cookie),
    },
  })
  t.equal(deep.statusCode, 400)
  t.match(deep.json(), { code: 'JSON_TOO_DEEP' })
  t.equal(await worker.ctx.queues.deploy.count(), 0, 'nothing queued')
  t.same(await app.db.selectFrom('deployments').selectAll().execute(), [], 'no rows')
})

t.test('POST /api/pod: a value of the wrong JSON type is told the type it must be', async (t) => {
  // A new user's trial: `"customer": 5` was told "customer must be 1-50 characters", and
  // `"env": ["dev"]` "environment must be 1-50 characters". env is "environment" in every
  // message (the frontend contract's word).
  const named: [unknown, string][] = [
    ...[5, 0, true, false, ['alpha'], {}].map((v): [unknown, string] => [
      { ...body('alpha', 'dev'), customer: v },
      'customer must be a string of 1-50 characters',
    ]),
    ...[12, true, ['dev'], { name: 'dev' }].map((v): [unknown, string] => [
      { ...body('alpha', 'dev'), env: v },
      'environment must be a string of 1-50 characters',
    ]),
    ...[5, true, ['x'], { name: 'x' }].map((v): [unknown, string] => [
      { customer: 'alpha', env: 'dev', spec: { instance_name: v } },
      'instance_name must be a string of 1-30 characters',
    ]),
    // Both wrong: the first field checked is named, as for other rules.
    [{ customer: 5, env: 12, spec: { instance_name: 5 } }, 'customer must be a string of 1-50 characters'],
  ]
  // Messages that named the type already (kept: the frontend contract).
  const kept: [unknown, string][] = [
    ...['x', 5, true, ['x']].map((v): [unknown, string] => [
      { customer: 'alpha', env: 'dev', spec: v },
      'spec must be an object',
    ]),
    ...[1, 'true', ['x'], {}].map((v): [unknown, string] => [
      { customer: 'alpha', env: 'dev', spec: { instance_name: 'x', waf_enabled: v } },
      'waf_enabled must be true or false',
    ]),
    ...[5, true, ['x'], {}].map((v): [unknown, string] => [
      body('alpha', 'dev', { commit_message: v }),
      'commit_message must be a non-empty string of at most 500 characters',
    ]),
    ...[5, true, ['new'], {}].map((v): [unknown, string] => [
      body('alpha', 'dev', { mode: v }),
      'mode must be "new" or "edit"',
    ]),
  ]
  for (const [payload, message] of [...named, ...kept]) {
    const res = await post(payload)
    const label = `${message} ← ${JSON.stringify(payload)}`
    t.equal(res.statusCode, 400, label)
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message }, label)
  }
  // Right-typed invalid values keep the contract's messages.
  for (const [payload, message] of [
    [body('a'.repeat(51), 'dev'), 'customer must be 1-50 characters'],
    [body('alpha', 'd'.repeat(51)), 'environment must be 1-50 characters'],
    [
      { customer: 'a', env: 'dev', spec: { instance_name: 'x'.repeat(31) } },
      'instance_name must be 1-30 characters',
    ],
  ] as const) {
    t.equal((await post(payload)).json().message, message)
  }
  t.equal(await worker.ctx.queues.deploy.count(), 0, 'nothing queued')
  t.same(await app.db.selectFrom('deployments').selectAll().execute(), [], 'no rows')
})

t.test('mode "new" on an existing pod is 409 POD_EXISTS', async (t) => {
  const res = await post(body('alpha', 'dev', { mode: 'new' }), writeHeaders(app, octocat.cookie))
  t.equal(res.statusCode, 409)
  t.match(res.json(), { code: 'POD_EXISTS', message: 'Pod already exists: alpha/dev' })
})

t.test('mode "edit" on a pod that does not exist is 404 POD_NOT_FOUND, nothing queued', async (t) => {
  // A new user's example: "edit" of a missing pod created it.
  const res = await post(body('nobody', 'dev', { mode: 'edit' }))
  t.equal(res.statusCode, 404)
  t.match(res.json(), { code: 'POD_NOT_FOUND', message: 'Pod not found: nobody/dev' })
  const rows = await app.db.selectFrom('deployments').select('id').where('customer', '=', 'nobody').execute()
  t.same(rows, [], 'no deployment')
})

t.test(
  'an empty spec.yml is an existing pod: "new" is 409, "edit" and no mode replace the file',
  async (t) => {
    // A review's finding: for one empty file "new" said 409 (it exists) and "edit" said 404.
    const empties: [string, string][] = [
      ['dev', ''],
      ['stg', '  \n\t\n'],
      ['prd', '# to be written\n'],
    ]
    for (const [e, text] of empties) {
      await bot.rest.repos.createOrUpdateFileContents({
        ...repo,
        path: `infra/hollow/${e}/spec.yml`,
        message: `test: empty hollow/${e}`,
        content: Buffer.from(text).toString('base64'),
        branch: 'main',
      })
    }
    const fileOn = async (branch: string, e: string) => {
      const file = await bot.rest.repos.getContent({
        ...repo,
        path: `infra/hollow/${e}/spec.yml`,
        ref: branch,
      })
      return Buffer.from((file.data as { content: string }).content, 'base64').toString()
    }

    for (const [e] of empties) {
      const res = await post(body('hollow', e, { mode: 'new' }))
      const message = `Pod already exists: hollow/${e}`
      t.equal(res.statusCode, 409, e)
      t.same(res.json(), { statusCode: 409, code: 'POD_EXISTS', error: message, message }, e)
    }
    const rows = () =>
      app.db.selectFrom('deployments').select('id').where('customer', '=', 'hollow').execute()
    t.same(await rows(), [], '"new": no deployment')

    for (const [e, text] of empties) {
      sim.ledger.clear()
      const edited = await post(body('hollow', e, { mode: 'edit' }))
      t.equal(edited.statusCode, 201, edited.body)
      t.same(
        sim.ledger
          .entries({ kind: 'api', method: 'PUT' })
          .filter((x) => x.route.includes('/contents/'))
          .map((x) => x.status),
        [200],
        `${e}: the empty file is updated with its sha, not created`,
      )
      const written = await fileOn(edited.json().branch, e)
      t.match(parse(written), {
        kind: 'Pod',
        metadata: { customer: 'hollow', environment: e },
        spec: {
          compute: { instance_name: `hollow-${e}-05`, instance_type: 't4g.nano' },
          security: { waf: { enabled: true } },
        },
      })
      if (text.startsWith('#')) t.ok(written.startsWith('# to be written\n'), 'its comment is kept')

      // No mode, waf_enabled left out: there is no current setting to keep, so the WAF starts off.
      const plain = await post({ customer: 'hollow', env: e, spec: { instance_name: `hollow-${e}-06` } })
      t.equal(plain.statusCode, 201, plain.body)
      const doc = parse(await fileOn(plain.json().branch, e))
      t.equal(doc.spec.compute.instance_name, `hollow-${e}-06`)
      t.equal(doc.spec.security.waf.enabled, false, `${e}: WAF off`)
    }
    t.equal((await rows()).length, 6, 'one deployment per accepted request')
  },
)

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
    branch: /^deploy-epsilon-stg-[0-9a-f-]{36}$/,
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
  t.equal(job?.data.deploymentId, created.deployment_id)
  t.same(
    job?.data,
    { deploymentId: created.deployment_id, requestId: res.headers['x-request-id'] },
    'job data holds ids only (the deployment and the request that enqueued it)',
  )

  const status = await app.inject({
    url: `/api/deployments/${created.deployment_id}`,
    headers: { cookie: octocat.cookie },
  })
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

t.test(
  'waf_enabled left out: an existing pod keeps its WAF setting, a new pod starts with it off',
  async (t) => {
    const wafOn = async (branch: string, customer: string, env: string) => {
      const file = await bot.rest.repos.getContent({
        ...repo,
        path: `infra/${customer}/${env}/spec.yml`,
        ref: branch,
      })
      const doc = parse(Buffer.from((file.data as { content: string }).content, 'base64').toString())
      return doc.spec.security.waf.enabled
    }
    // gamma/prd has `waf: {enabled: true}` in the seed.
    const kept = await post({ customer: 'gamma', env: 'prd', spec: { instance_name: 'gamma-prd-02' } })
    t.equal(kept.statusCode, 201, kept.body)
    t.equal(await wafOn(kept.json().branch, 'gamma', 'prd'), true, 'the production WAF stays on')
    const row = await findDeployment(app.db, kept.json().deployment_id)
    t.equal(row?.waf_enabled, true, 'the deployment records what was deployed')

    const fresh = await post({ customer: 'zeta', env: 'dev', spec: { instance_name: 'zeta-dev-01' } })
    t.equal(fresh.statusCode, 201, fresh.body)
    t.equal(await wafOn(fresh.json().branch, 'zeta', 'dev'), false)
  },
)

t.test('null (or an empty commit_message or mode) counts as not sent, as the body schema says', async (t) => {
  // A new user's finding: these were accepted while the API description said they were not.
  const document = (await app.inject({ url: '/docs/json' })).json()
  const schema = document.paths['/api/pod'].post.requestBody.content['application/json'].schema
  // Compiled as the server compiles a body schema.
  const compile = validatorByPart()({}, { customOptions: { removeAdditional: false, allErrors: false } })
  const validate = compile({ schema, method: 'POST', url: '/api/pod', httpPart: 'body' })
  const accepts = (body: unknown) => validate(body) === true
  const minimal = { customer: 'alpha', env: 'stg', spec: { instance_name: 'alpha-stg-02' } }
  for (const extra of [{ mode: null }, { mode: '' }, { commit_message: null }, { commit_message: '' }]) {
    t.equal(accepts({ ...minimal, ...extra }), true, `the schema allows ${JSON.stringify(extra)}`)
  }
  t.equal(
    accepts({ ...minimal, spec: { ...minimal.spec, waf_enabled: null } }),
    true,
    'the schema allows waf_enabled: null',
  )
  // Still refused by the schema: null where null is "Missing required …", and other values.
  for (const bad of [
    { ...minimal, customer: null },
    { ...minimal, spec: { instance_name: null } },
    { ...minimal, mode: 'upsert' },
    { ...minimal, spec: { ...minimal.spec, waf_enabled: '' } },
    { ...minimal, commit_message: 'x'.repeat(501) },
  ]) {
    t.equal(accepts(bad), false, `the schema refuses ${JSON.stringify(bad).slice(0, 120)}`)
  }

  // alpha/stg has `waf: {enabled: true}` in the seed: a null waf_enabled keeps it.
  const res = await post({
    ...minimal,
    spec: { ...minimal.spec, waf_enabled: null },
    mode: null,
    commit_message: '',
  })
  t.equal(res.statusCode, 201, res.body)
  const row = await findDeployment(app.db, res.json().deployment_id)
  t.match(row, { waf_enabled: true, mode: null, commit_message: null }, 'as if none were sent')
  const head = await bot.rest.repos.getBranch({ ...repo, branch: res.json().branch })
  t.equal(head.data.commit.commit.message, 'Deploy alpha/stg', 'the default commit message')
  // An empty mode is create-or-update too: a pod that does not exist is created.
  const created = await post({ customer: 'upsilon', env: 'dev', spec: { instance_name: 'u-1' }, mode: '' })
  t.equal(created.statusCode, 201, created.body)
  t.equal((await findDeployment(app.db, created.json().deployment_id))?.mode, null)
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
  const { cookie } = await signIn(slow, sim, 'octocat')
  const res = await slow.inject({
    method: 'POST',
    url: '/api/pod',
    payload: body('zeta', 'dev'),
    headers: writeHeaders(slow, cookie),
  })
  t.equal(res.statusCode, 202)
  const accepted = res.json()
  t.match(accepted, { deployment_id: String, status: /^(queued|running)$/ })
  t.equal(accepted.status_url, `/api/deployments/${accepted.deployment_id}`)
  let state = ''
  for (let i = 0; i < 200 && state !== 'succeeded'; i++) {
    await new Promise((r) => setTimeout(r, 50))
    state = (await slow.inject({ url: accepted.status_url, headers: { cookie } })).json().status
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
  const status = await app.inject({
    url: `/api/deployments/${res.json().deployment_id}`,
    headers: { cookie: octocat.cookie },
  })
  t.match(status.json(), { status: 'failed', error: { code: 'SPECS_REPO_NOT_FOUND', status: 404 } })

  // The pod is free again: a deploy with write access goes through.
  const ok = await post(body('gamma', 'dev'))
  t.equal(ok.statusCode, 201)
})

t.test('GET /api/deployments: recent history, filtered, validated; signed-in users only', async (t) => {
  const get = (url: string) => app.inject({ url, headers: { cookie: octocat.cookie } })
  for (const url of ['/api/deployments', '/api/deployments/00000000-0000-4000-8000-000000000000']) {
    const anonymous = await app.inject({ url })
    t.equal(anonymous.statusCode, 401, url)
    t.equal(anonymous.json().code, 'NOT_AUTHENTICATED')
  }
  const all = await get('/api/deployments')
  t.equal(all.statusCode, 200)
  const list = all.json().deployments
  t.ok(list.length >= 4)
  const times = list.map((d: { created_at: string }) => Date.parse(d.created_at))
  t.same(
    times,
    [...times].sort((x: number, y: number) => y - x),
    'newest first',
  )
  const gamma = await get('/api/deployments?customer=gamma&env=dev')
  t.same(
    gamma.json().deployments.map((d: { status: string }) => d.status),
    ['succeeded', 'failed'],
  )
  t.equal((await get('/api/deployments?customer=gamma&limit=1')).json().deployments.length, 1)
  // An outside review's example: these were 500s (Postgres refused "Infinity" as a bigint).
  for (const limit of ['Infinity', '-Infinity', '1e400', '-1e400', 'NaN']) {
    const res = await get(`/api/deployments?limit=${limit}`)
    t.equal(res.statusCode, 400, `limit=${limit}`)
    t.equal(res.json().code, 'VALIDATION_ERROR', `limit=${limit}`)
  }
  const bad = await get('/api/deployments?customer=..%2Fx')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().message, 'customer contains path traversal attempt')
  for (const id of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) {
    const missing = await get(`/api/deployments/${id}`)
    t.equal(missing.statusCode, 404)
    t.equal(missing.json().code, 'DEPLOYMENT_NOT_FOUND')
  }
})

t.test('deployment history is for those who can read the specs repository', async (t) => {
  const someId = (await app.db.selectFrom('deployments').select('id').executeTakeFirstOrThrow()).id
  // A new user's example: monalisa (no access to the private acme/infra-specs) read every deploy.
  const monalisa = await signIn(app, sim, 'monalisa')
  for (const url of ['/api/deployments', `/api/deployments/${someId}`]) {
    const res = await app.inject({ url, headers: { cookie: monalisa.cookie } })
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().code, 'SPECS_REPO_NOT_FOUND', url)
    t.notMatch(res.body, /instance_name|pr_url/, url)
  }
  // Nor can she deploy: refused before any row (a second review saw her deploy recorded, and a
  // 409 or 202 naming a deploy in flight).
  const before = await app.db.selectFrom('deployments').select('id').execute()
  const deploy = await post(
    body('alpha', 'prd', { commit_message: 'hello from monalisa' }),
    writeHeaders(app, monalisa.cookie),
  )
  t.equal(deploy.statusCode, 404, deploy.body)
  t.equal(deploy.json().code, 'SPECS_REPO_NOT_FOUND')
  t.notOk(deploy.json().deployment_id, 'no deployment id')
  t.equal((await app.db.selectFrom('deployments').select('id').execute()).length, before.length, 'no row')
  // hubot is a read collaborator: he sees the history.
  const hubot = await signIn(app, sim, 'hubot')
  const res = await app.inject({ url: '/api/deployments', headers: { cookie: hubot.cookie } })
  t.equal(res.statusCode, 200)
  t.ok(res.json().deployments.length > 0)
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
  const fresh = await inFlightRow('theta', 'stg', 'theta-stg-05', true)
  const busy = await post(body('theta', 'stg'))
  t.equal(busy.statusCode, 202)
  t.equal(busy.json().deployment_id, fresh.id)
})

t.test('without a queue the request fails fast and leaves the pod free', async (t) => {
  // Its own app and queue prefix (no worker); the queue's metadata is corrupted so adding a job fails.
  const broken = await build(t, env)
  const { cookie } = await signIn(broken, sim, 'octocat')
  await broken.redis.set(`${broken.config.REDIS_PREFIX}:deploy:meta`, 'not a hash')
  const res = await broken.inject({
    method: 'POST',
    url: '/api/pod',
    payload: body('eta', 'dev'),
    headers: writeHeaders(broken, cookie),
  })
  t.equal(res.statusCode, 503, res.body)
  t.equal(res.json().code, 'QUEUE_UNAVAILABLE')
  const rows = await broken.db.selectFrom('deployments').selectAll().where('customer', '=', 'eta').execute()
  t.equal(rows.length, 1)
  t.ok(
    rows.every((r) => r.status === 'failed'),
    'no row stays in flight',
  )
})

t.test('anonymous writes are refused: 401 before the body is read, nothing queued', async (t) => {
  const before = await app.db.selectFrom('deployments').select('id').execute()
  for (const payload of [body('alpha', 'dev'), { nonsense: true }, 'not json']) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/pod',
      payload: payload as object,
      headers: { 'content-type': 'application/json' },
    })
    t.equal(res.statusCode, 401)
    t.same(res.json(), {
      statusCode: 401,
      code: 'NOT_AUTHENTICATED',
      error: 'Sign in with GitHub to continue.',
      message: 'Sign in with GitHub to continue.',
    })
  }
  t.equal((await app.db.selectFrom('deployments').select('id').execute()).length, before.length, 'no rows')
})

t.test('a different deploy of a pod with one in flight: 409 naming it; the same values: 202', async (t) => {
  const running = await inFlightRow('iota', 'dev', 'iota-dev-05', true)
  t.teardown(() => app.db.deleteFrom('deployments').where('id', '=', running.id).execute())
  const other = await post(body('iota', 'dev', { spec: { instance_name: 'iota-dev-06', waf_enabled: true } }))
  t.equal(other.statusCode, 409)
  t.match(other.json(), {
    statusCode: 409,
    code: 'DEPLOY_IN_PROGRESS',
    deployment_id: running.id,
    status_url: `/api/deployments/${running.id}`,
  })
  t.equal(other.json().error, other.json().message)
  t.match(other.json().message, running.id)
  const wafOnly = await post(
    body('iota', 'dev', { spec: { instance_name: 'iota-dev-05', waf_enabled: false } }),
  )
  t.equal(wafOnly.statusCode, 409, 'a different WAF setting is a different deploy')
  const same = await post(body('iota', 'dev'))
  t.equal(same.statusCode, 202)
  t.same(same.json(), {
    deployment_id: running.id,
    status: 'queued',
    status_url: `/api/deployments/${running.id}`,
  })
  const rows = await app.db.selectFrom('deployments').select('id').where('customer', '=', 'iota').execute()
  t.equal(rows.length, 1, 'nothing was silently dropped into a second row')
})

t.test('two different concurrent deploys: the second gets 409 while the first opens its PR', async (t) => {
  sim.setLatency(200) // keep the first deploy in flight while the second arrives
  t.teardown(() => sim.setLatency(0))
  const first = post(body('kappa', 'dev'))
  let row: { id: string } | undefined
  for (let i = 0; i < 400 && !row; i++) {
    row = await app.db
      .selectFrom('deployments')
      .select('id')
      .where('customer', '=', 'kappa')
      .executeTakeFirst()
    if (!row) await new Promise((r) => setTimeout(r, 10))
  }
  const second = await post(
    body('kappa', 'dev', { spec: { instance_name: 'kappa-other', waf_enabled: true } }),
  )
  t.equal(second.statusCode, 409, second.body)
  t.equal(second.json().deployment_id, row?.id)
  const done = await first
  t.equal(done.statusCode, 201, done.body)
  t.equal(done.json().deployment_id, row?.id)
})

t.test('Idempotency-Key: a retry gets the first answer, never a second pull request', async (t) => {
  const before = (await bot.rest.pulls.list({ ...repo, state: 'all', per_page: 100 })).data.length
  const headers = { ...writeHeaders(app, octocat.cookie), 'idempotency-key': 'retry-me-1' }
  const first = await post(body('lambda', 'dev'), headers)
  t.equal(first.statusCode, 201, first.body)
  const retry = await post(body('lambda', 'dev'), headers)
  t.equal(retry.statusCode, 201)
  t.same(retry.json(), first.json(), 'the first answer')
  t.equal(retry.headers['idempotent-replayed'], 'true')
  const after = (await bot.rest.pulls.list({ ...repo, state: 'all', per_page: 100 })).data.length
  t.equal(after, before + 1, 'one pull request')
  t.equal(
    (await app.db.selectFrom('deployments').select('id').where('customer', '=', 'lambda').execute()).length,
    1,
  )

  const reused = await post(body('lambda', 'stg'), headers)
  t.equal(reused.statusCode, 422)
  t.equal(reused.json().code, 'IDEMPOTENCY_KEY_REUSED')
  for (const key of ['x'.repeat(256), 'caf\u00e9']) {
    const bad = await post(body('lambda', 'dev'), { ...headers, 'idempotency-key': key })
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'INVALID_IDEMPOTENCY_KEY')
  }
  // Keys are per user: another user's identical key is a request of its own (and a refusal here).
  const hubot = await signIn(app, sim, 'hubot')
  const theirs = await post(body('lambda', 'dev'), {
    ...writeHeaders(app, hubot.cookie),
    'idempotency-key': 'retry-me-1',
  })
  t.not(theirs.headers['idempotent-replayed'], 'true')
  // An error answer is not kept: the retry runs again.
  const again = await post(body('lambda', 'dev'), {
    ...writeHeaders(app, hubot.cookie),
    'idempotency-key': 'retry-me-1',
  })
  t.equal(again.statusCode, theirs.statusCode)
  t.not(again.headers['idempotent-replayed'], 'true')
})

t.test('Idempotency-Key: the same body with its keys in another order is the same request', async (t) => {
  const headers = { ...writeHeaders(app, octocat.cookie), 'idempotency-key': 'key-order-1' }
  const first = await post(body('omicron', 'dev'), headers)
  t.equal(first.statusCode, 201, first.body)
  const reordered = {
    spec: { waf_enabled: true, instance_name: 'omicron-dev-05' },
    env: 'dev',
    customer: 'omicron',
  }
  const retry = await post(reordered, headers)
  t.equal(retry.statusCode, 201, retry.body)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.same(retry.json(), first.json())
})

t.test('Idempotency-Key: a claim whose request never answers lapses in minutes, not a day', async (t) => {
  // The reviewer's example: an API killed mid-request left its key answering 409 for 24 hours.
  sim.setLatency(200)
  t.teardown(() => sim.setLatency(0))
  const headers = { ...writeHeaders(app, octocat.cookie), 'idempotency-key': 'killed-mid-request' }
  const pattern = `${app.config.REDIS_PREFIX}:idem:pod:*`
  const before = new Set(await app.redis.keys(pattern))
  const first = post(body('pi', 'dev'), headers)
  let claim: string | undefined
  for (let i = 0; i < 400 && !claim; i++) {
    claim = (await app.redis.keys(pattern)).find((key) => !before.has(key))
    if (!claim) await new Promise((r) => setTimeout(r, 10))
  }
  if (!claim) throw new Error('no claim was written')
  const pendingTtl = await app.redis.ttl(claim)
  const longest = IDEMPOTENCY_PENDING_SECONDS
  t.ok(pendingTtl > 0 && pendingTtl <= longest, `pending claim lapses within ${longest} s (${pendingTtl})`)
  const overlapping = await post(body('pi', 'dev'), headers)
  t.equal(overlapping.statusCode, 409)
  t.equal(overlapping.json().code, 'IDEMPOTENCY_KEY_IN_USE')
  t.equal((await first).statusCode, 201)
  t.ok((await app.redis.ttl(claim)) > longest, 'the answer itself is kept for a day')
})
