import { connect } from 'node:net'
import { createOctokit } from '@portico/core'
import { freePort, startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, signIn } from './helper.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const TOKEN = 'metrics-token-0123456789abcdef'
const app = await build(t, { ...env, METRICS_TOKEN: TOKEN })
const scrape = (authorization?: string) =>
  app.inject({ url: '/metrics', headers: authorization ? { authorization } : {} })

const REQUIRED = 'A bearer token is required: send Authorization: Bearer METRICS_TOKEN.'
const INVALID = 'The bearer token is not valid for /metrics.'

t.test('/metrics refuses without the token, and with a wrong one', async (t) => {
  // A review's finding: a wrong token was told the same as a missing one.
  for (const [what, authorization] of [
    ['no Authorization header', undefined],
    ['the token without the Bearer scheme', TOKEN],
    ['another scheme', `Basic ${TOKEN}`],
    ['the scheme alone', 'Bearer'],
    ['the scheme and blanks', 'Bearer    '],
  ] as const) {
    const res = await scrape(authorization)
    t.equal(res.statusCode, 401, what)
    t.same(
      res.json(),
      { statusCode: 401, code: 'METRICS_TOKEN_REQUIRED', error: REQUIRED, message: REQUIRED },
      what,
    )
    t.equal(res.headers['www-authenticate'], 'Bearer realm="metrics"', `${what}: a challenge, no error code`)
  }
  for (const [what, authorization] of [
    ['a wrong token', 'Bearer nope'],
    ['the token with a character more', `Bearer ${TOKEN}x`],
    ['the token cut short', `Bearer ${TOKEN.slice(0, -1)}`],
    ['another case', `Bearer ${TOKEN.toUpperCase()}`],
  ] as const) {
    const res = await scrape(authorization)
    t.equal(res.statusCode, 401, what)
    t.same(
      res.json(),
      { statusCode: 401, code: 'METRICS_TOKEN_INVALID', error: INVALID, message: INVALID },
      what,
    )
    t.equal(
      res.headers['www-authenticate'],
      'Bearer realm="metrics", error="invalid_token"',
      `${what}: RFC 6750's invalid_token`,
    )
    t.notMatch(res.body, /nope|metrics-token/, `${what}: the token sent is not echoed`)
  }
  t.equal((await scrape(`Bearer ${TOKEN}`)).statusCode, 200)
  t.equal((await scrape(`bearer ${TOKEN}`)).statusCode, 200, 'the scheme is case-insensitive (RFC 9110)')
  t.equal((await scrape(`Bearer   ${TOKEN}`)).statusCode, 200, 'blanks after the scheme')
  const unconfigured = await build(t, env)
  const off = await unconfigured.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(off.statusCode, 403, 'no METRICS_TOKEN: refused')
  t.equal(off.json().code, 'METRICS_DISABLED')
  t.notOk(off.headers['www-authenticate'], 'no challenge: no token would be accepted')
  // A new user's trial: with METRICS_PORT set, the refusal did not say where the metrics were.
  const port = await freePort()
  const separate = await build(t, { ...env, METRICS_PORT: String(port) })
  const elsewhere = await separate.inject({ url: '/metrics' })
  t.equal(elsewhere.statusCode, 403)
  t.equal(elsewhere.json().code, 'METRICS_DISABLED')
  t.match(elsewhere.json().message, `served on METRICS_PORT (port ${port}, path /metrics)`)
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200, 'where the sentence points')
  t.equal(
    (await fetch(`http://127.0.0.1:${port}/metrics?x=1`)).status,
    200,
    'a query string is not another path',
  )
  // A new user's trial: other paths answered 404 with an empty body, not the API's error body.
  for (const [method, url] of [
    ['GET', '/'],
    ['GET', '/metricsx'],
    ['POST', '/metricsx'],
  ] as const) {
    const other = await fetch(`http://127.0.0.1:${port}${url}`, { method })
    t.equal(other.status, 404, `${method} ${url}`)
    t.same(await other.json(), {
      statusCode: 404,
      code: 'NOT_FOUND',
      error: 'The metrics listener serves GET /metrics only.',
      message: 'The metrics listener serves GET /metrics only.',
    })
  }
  // A second review: other methods, malformed requests and CONNECT got Node's empty answers.
  const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })
  t.equal(post.status, 405)
  t.equal(post.headers.get('allow'), 'GET, HEAD')
  t.match(await post.json(), { statusCode: 405, code: 'METHOD_NOT_ALLOWED' })
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' })).status, 200)
  for (const [raw, status, code] of [
    ['NOT HTTP\r\n\r\n', 400, 'MALFORMED_REQUEST'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405, 'METHOD_NOT_ALLOWED'],
    [`GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
  ] as const) {
    const answer = await rawRequest(port, raw)
    t.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), raw.slice(0, 40))
    t.match(answer, `"code":"${code}"`, raw.slice(0, 40))
  }
})

t.test('after a request, a job and a GitHub call, every metric family is exposed', async (t) => {
  const { cookie } = await signIn(app, sim, 'octocat')
  t.equal((await app.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode, 200)
  // A GitHub call through the shared Octokit factory (conditional: a 304 is not counted).
  const octokit = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
  const first = await octokit.request('GET /repos/{owner}/{repo}', { owner: 'acme', repo: 'infra-specs' })
  await octokit
    .request('GET /repos/{owner}/{repo}', {
      owner: 'acme',
      repo: 'infra-specs',
      headers: { 'if-none-match': String(first.headers.etag) },
    })
    .catch(() => {})
  // A job in a queue (depth is read at scrape time).
  await app.queues.maintenance.add('metrics-test', {} as never, { delay: 60_000 })

  const res = await scrape(`Bearer ${TOKEN}`)
  t.equal(res.statusCode, 200)
  t.match(String(res.headers['content-type']), /^text\/plain/)
  const text = res.body
  t.match(
    text,
    /portico_http_request_duration_seconds_count\{method="GET",route="\/api\/auth\/user",status_code="200"\} \d+/,
  )
  t.match(
    text,
    /portico_github_requests_total\{route="GET \/repos\/\{owner\}\/\{repo\}",status="200",conditional="false",counted="true"\} \d+/,
  )
  t.match(
    text,
    /portico_github_requests_total\{route="GET \/repos\/\{owner\}\/\{repo\}",status="304",conditional="true",counted="false"\} \d+/,
  )
  t.match(text, /portico_github_rate_limit_remaining\{token_kind="[a-z_]+"\} \d+/)
  t.match(text, /portico_queue_jobs\{queue="maintenance",state="delayed"\} [1-9]/)
  for (const family of ['process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.match(text, new RegExp(`# TYPE ${family} `), `${family} is exposed`)
  }
  // Jobs, clones and analyses are the worker's: its own /metrics has them (clone-repo.test.ts).
  // The API listed them too, always empty (a new user's trial).
  for (const family of [
    'portico_job_duration_seconds',
    'portico_clone_duration_seconds',
    'portico_clone_bytes_total',
    'portico_analysis_duration_seconds',
    'portico_analysis_truncations_total',
  ]) {
    t.notMatch(text, new RegExp(`# TYPE ${family} `), `${family} is the worker's, not listed here`)
  }
  t.notMatch(text, /gh[opsu]_[A-Za-z0-9]{10}/, 'no token in the metrics')
})

t.test(
  'security headers on an API route, an error, and Bull Board; relaxed CSP only where needed',
  async (t) => {
    const api = await app.inject({ url: '/health/live' })
    t.equal(api.headers['x-content-type-options'], 'nosniff')
    t.notOk(api.headers['strict-transport-security'], 'no HSTS for an http PUBLIC_URL (helmet.test.ts)')
    t.match(String(api.headers['content-security-policy']), /default-src 'self'/)
    t.notMatch(
      String(api.headers['content-security-policy']),
      /unsafe-inline'.*script|script-src[^;]*unsafe-inline/,
    )
    const error = await app.inject({ url: '/api/v1/tenants' })
    t.equal(error.statusCode, 401)
    t.equal(error.headers['x-frame-options'], 'SAMEORIGIN')
    const board = await app.inject({ url: '/admin/queues' })
    t.equal(board.headers['x-content-type-options'], 'nosniff', 'Bull Board (anonymous: 401) has the headers')
    const { cookie } = await signIn(app, sim, 'octocat')
    const operatorApp = await build(t, { ...env, OPERATOR_LOGINS: 'octocat' })
    const op = await signIn(operatorApp, sim, 'octocat')
    const page = await operatorApp.inject({ url: '/admin/queues', headers: { cookie: op.cookie } })
    t.equal(page.statusCode, 200)
    t.equal(page.headers['x-content-type-options'], 'nosniff')
    t.match(String(page.headers['content-security-policy']), /script-src 'self' 'unsafe-inline'/)
    const docs = await app.inject({ url: '/docs/', headers: { cookie } })
    t.match(String(docs.headers['content-security-policy']), /script-src 'self' 'unsafe-inline'/)
  },
)

t.test('cache lookups are counted: portico_cache_lookups_total by cache and result', async (t) => {
  const cached = await build(t, { ...env, METRICS_TOKEN: TOKEN, API_READ_CACHE_MS: '60000' })
  const sessionCache = cached.sessionCache
  if (!sessionCache) throw new Error('no session cache')
  const { cookie } = await signIn(cached, sim, 'octocat')
  const lookups = async (cache: string, result: string) => {
    const text = (await cached.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } }))
      .body
    const m = new RegExp(
      `^portico_cache_lookups_total\\{cache="${cache}",result="${result}"\\} (\\d+)$`,
      'm',
    ).exec(text)
    return m ? Number(m[1]) : Number.NaN
  }
  t.equal((await cached.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode, 200)
  t.ok((await lookups('session', 'miss')) >= 1, 'the first read of the session missed')
  const hits = await lookups('session', 'hit')
  const statsBefore = sessionCache.stats.hits
  for (let i = 0; i < 3; i++) await cached.inject({ url: '/api/auth/user', headers: { cookie } })
  const served = sessionCache.stats.hits - statsBefore
  t.ok(served > 0, 'reads were served from memory')
  t.equal(await lookups('session', 'hit'), hits + served, 'each hit is counted')
  t.ok(Number.isFinite(await lookups('session', 'bypass')), 'bypasses are reported')
  t.ok(Number.isFinite(await lookups('read', 'miss')), 'the read cache is reported too')
})

/** Sends `raw` bytes to a local port and returns everything it answers before closing. */
async function rawRequest(port: number, raw: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(raw)
  let text = ''
  for await (const chunk of socket) text += String(chunk)
  return text
}
