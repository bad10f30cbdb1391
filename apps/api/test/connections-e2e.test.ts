// End to end with real processes: the API server and the worker, the simulator's git server,
// Postgres and Redis. Also the secret scan: the PAT must appear nowhere it could leak; and tracing:
// one trace from the API request through the queue into the worker.
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import path from 'node:path'
import { createDb } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { dumpRedis, httpClient, signInOverHttp, startPortico, until, watchGitCommandLines } from './e2e.js'

const { sim, env } = await startTestSimulator(t)
const config = await testConfig(t, env)
const db = createDb(config)
t.teardown(() => db.destroy())

/** An OTLP/HTTP collector: every span both processes export (JSON, as the exporter sends it). */
interface ExportedSpan {
  service: string
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Record<string, unknown>
}
const spans: ExportedSpan[] = []
const exportedBodies: string[] = []
const collector = createHttpServer((req, res) => {
  let body = ''
  req.on('data', (d: Buffer) => {
    body += d.toString()
  })
  req.on('end', () => {
    exportedBodies.push(body)
    if (req.url === '/v1/traces') {
      type Attr = { key: string; value: Record<string, unknown> }
      const value = (a: Attr) => Object.values(a.value)[0]
      for (const rs of JSON.parse(body).resourceSpans ?? []) {
        const service = String(
          value(
            (rs.resource?.attributes ?? []).find((a: Attr) => a.key === 'service.name') ?? {
              key: '',
              value: {},
            },
          ),
        )
        for (const ss of rs.scopeSpans ?? [])
          for (const span of ss.spans ?? [])
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId || undefined,
              name: span.name,
              kind: span.kind,
              attributes: Object.fromEntries((span.attributes ?? []).map((a: Attr) => [a.key, value(a)])),
            })
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})
await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise<void>((resolve) => collector.close(() => resolve())))
const collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`

const PAT = `ghp_e2e${Date.now().toString(36)}${'0'.repeat(20)}`.slice(0, 40)
const BASIC = Buffer.from(`x-access-token:${PAT}`).toString('base64')
sim.addToken('octocat', PAT, { scopes: ['repo'] })

const { base, api, worker } = await startPortico(t, {
  name: 'connections-e2e',
  config,
  env,
  overrides: { WORKER_QUEUES: 'clone,maintenance', OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl },
})
const client = httpClient(base)
const { call, responses } = client
await signInOverHttp(client, 'octocat')
const tenant = (await call('POST', '/api/v1/tenants', { slug: 'e2e-tenant', name: 'E2E' })).json()
const project = (
  await call('POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'App', slug: 'app' })
).json()
const github = `/api/v1/projects/${project.id}/github`

// Every git command line seen while clones run.
const gitCommandLines = watchGitCommandLines(t, config.cloneRoot)

t.test('POST → 201 pending → progress → analyzed with the sample app’s counts', async (t) => {
  sim.setLatency(300)
  t.teardown(() => sim.setLatency(0))
  const created = await call('POST', github, { repo_url: `${sim.url}/acme/sample-app`, pat: PAT })
  t.equal(created.status, 201, created.text)
  t.equal(created.json().status, 'pending')

  const seen: { status: string; progress: number }[] = []
  const done = await until(
    async () => {
      const res = await call('GET', github)
      const body = res.json()
      seen.push({ status: body.status, progress: body.progress })
      return body.status === 'analyzed' || body.status === 'failed' ? body : undefined
    },
    120_000,
    'the connection to be analysed',
  )
  t.equal(done.status, 'analyzed', done.error_message ?? '')
  t.equal(done.progress, 100)
  t.equal(done.routes_count, 10)
  t.equal(done.components_count, 3)
  t.equal(done.endpoints_count, 10)
  t.match(done.commit_sha, /^[0-9a-f]{40}$/)
  t.ok(done.expires_at)
  t.ok(
    seen.some((s) => s.status === 'cloning'),
    `polling saw the clone in progress: ${JSON.stringify(seen)}`,
  )
  const progress = seen.map((s) => s.progress)
  t.same(
    [...progress].sort((a, b) => a - b),
    progress,
    'progress only grows',
  )

  const dest = path.join(config.cloneRoot, 'tenants', tenant.id, 'repos', done.id)
  t.ok(existsSync(path.join(dest, 'src/routes/users.js')))

  t.test('secret scan: the PAT is nowhere', async (t) => {
    const gitConfig = await readFile(path.join(dest, '.git/config'), 'utf8')
    const dumps = await dumpRedis(config.REDIS_URL, config.REDIS_PREFIX)
    t.ok(
      dumps.some((d) => d.includes(`clone-${done.id}`)),
      'the clone job was found in Redis',
    )
    const row = await db
      .selectFrom('github_connections')
      .selectAll()
      .where('id', '=', done.id)
      .executeTakeFirstOrThrow()
    const { encrypted_token, ...columns } = row
    t.notOk(String(encrypted_token).includes(PAT), 'stored encrypted')

    t.ok(gitCommandLines.size > 0, 'git command lines were captured')
    t.ok(
      [...gitCommandLines].some((c) => c.startsWith('git clone')),
      'including the clone itself',
    )
    t.ok(api.logs.text.length > 0 && worker.logs.text.includes('repository cloned'), 'logs were captured')
    const places: Record<string, string> = {
      '.git/config': gitConfig,
      'API logs': api.logs.text,
      'worker logs': worker.logs.text,
      'Redis (jobs, events, sessions)': dumps.join('\n'),
      'database row': JSON.stringify(columns),
      'API responses': responses.join('\n'),
      'git command lines': [...gitCommandLines].join('\n'),
      'exported traces': exportedBodies.join('\n'),
    }
    for (const [place, text] of Object.entries(places)) {
      t.notOk(text.includes(PAT), `PAT not in ${place}`)
      t.notOk(text.includes(BASIC), `Basic credential not in ${place}`)
    }
  })
})

t.test('DELETE during a clone cancels it and leaves nothing behind', async (t) => {
  t.equal((await call('DELETE', github)).status, 204, 'the analysed connection is removed first')
  sim.setLatency(1000)
  t.teardown(() => sim.setLatency(0))
  const created = (await call('POST', github, { repo_url: `${sim.url}/acme/sample-app`, pat: PAT })).json()
  await until(
    async () => ((await call('GET', github)).json().status === 'cloning' ? true : undefined),
    120_000,
    'the clone to start',
  )
  const res = await call('DELETE', github)
  t.equal(res.status, 204)
  t.equal((await call('GET', github)).status, 404)
  const reposDir = path.join(config.cloneRoot, 'tenants', tenant.id, 'repos')
  await until(
    async () => {
      const log = worker.logs.text
        .split('\n')
        .filter((l) => l.includes(`clone-${created.id}`) && l.includes('job completed'))
      return log.length > 0 ? true : undefined
    },
    120_000,
    'the worker to stop the clone',
  )
  t.same(await readdir(reposDir).catch(() => []), [], 'no clone or partial directory left')
  const left = [...gitCommandLines].filter((c) => c.includes(created.id))
  t.ok(left.length > 0, 'the clone had started')
  const running: string[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes(created.id)) running.push(cmdline)
  }
  t.same(running, [], 'no git process left running')
})

t.test('traces: a request, its job and the worker’s processing share one trace', async (t) => {
  // Both processes batch spans for 1 s; the clones above have long finished.
  const trace = await until(
    async () => {
      const consumer = spans.find((s) => s.service === 'portico-worker' && s.name === 'process clone')
      if (!consumer) return undefined
      const producer = spans.find(
        (s) => s.service === 'portico-api' && s.name === 'add clone.clone' && s.traceId === consumer.traceId,
      )
      return producer ? spans.filter((s) => s.traceId === consumer.traceId) : undefined
    },
    60_000,
    'a trace spanning the API and the worker',
  )
  const services = new Set(trace.map((s) => s.service))
  t.same([...services].sort(), ['portico-api', 'portico-worker'], 'one trace crosses the queue')
  t.ok(
    trace.some((s) => s.service === 'portico-api' && s.attributes['http.route'] !== undefined),
    `the API request span names its route: ${trace.map((s) => `${s.service}:${s.name}`).join(', ')}`,
  )
  t.ok(
    trace.some((s) => s.service === 'portico-api' && s.attributes['db.system.name'] === 'postgresql'),
    'Postgres queries of the request are in it',
  )
  t.ok(
    spans.some((s) => s.service === 'portico-api' && s.attributes['db.system.name'] === 'redis'),
    'Redis commands are traced',
  )
  t.ok(
    trace.some(
      (s) =>
        s.service === 'portico-worker' && /\/repos(itories)?\//.test(String(s.attributes['url.full'] ?? '')),
    ),
    "the worker's GitHub calls are in it",
  )
  t.notOk(
    spans.some((s) =>
      String(s.attributes['url.path'] ?? s.attributes['http.target'] ?? '').startsWith('/health'),
    ),
    'probes are not traced',
  )
  t.notOk(
    spans.some((s) => s.service === 'portico-api' && String(s.attributes['url.path'] ?? '').includes('?')),
    'request spans carry no query string (the OAuth callback’s code and state)',
  )
  const redisStatements = spans
    .filter((s) => s.attributes['db.system.name'] === 'redis')
    .map((s) => String(s.attributes['db.query.text'] ?? ''))
  t.ok(redisStatements.length > 0)
  t.notOk(
    redisStatements.some((q) => q.includes(' ') || q.includes('sess:')),
    'Redis spans name the command only: no session ids or contents',
  )
})
