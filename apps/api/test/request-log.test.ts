import { loggerOptions } from '@portico/core'
import { testConfig } from '@portico/testing'
import Fastify from 'fastify'
import { pino } from 'pino'
import t from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'

// One line per request, written when it ends, with what an operator searches by; secrets in the
// query string are redacted even though that line skips path redaction.
const config = await testConfig(t, { LOG_LEVEL: 'info' })
const lines: Record<string, unknown>[] = []
const server = Fastify(
  serverOptions(config, {
    ...loggerOptions('info'),
    stream: { write: (line: string) => void lines.push(JSON.parse(line)) },
  }),
)
await server.register(app, { config })
server.get('/test/boom', async () => {
  throw Object.assign(new Error('exploded with ghp_0123456789abcdefghijklmnopqrstuvwxyz'), { token: 'ghp_x' })
})
server.get('/test/says', async (request) => {
  request.log.info({ step: 1 }, 'said by the route')
  request.log.child({ part: 'inner' }).warn('said by a child')
  // Wrapping a logger by deriving from it (as tests and plugins do) keeps working.
  ;(Object.create(request.log) as typeof request.log).info('said through a derived logger')
  return { ok: true }
})
server.get('/test/quiet', { logLevel: 'warn' }, async (request) => {
  request.log.info('not at this route level')
  request.log.warn('at this route level')
  return { ok: true }
})
await server.ready()
t.teardown(() => server.close())

const forRequest = (id: string) => lines.filter((l) => l.reqId === id)

t.test('a request writes one line when it ends: id, method, redacted URL, status, time', async (t) => {
  const res = await server.inject({ url: '/health/live?code=oauth-code-123&x=1' })
  const mine = forRequest(String(res.headers['x-request-id']))
  t.equal(mine.length, 1, 'no "incoming request" line')
  const [line] = mine
  t.equal(line?.msg, 'request completed')
  t.match(line, {
    level: 30,
    req: { method: 'GET', url: '/health/live?code=[REDACTED]&x=1' },
    res: { statusCode: 200 },
    responseTime: Number,
  })
  t.notOk(JSON.stringify(mine).includes('oauth-code-123'))
})

t.test('a failed request is logged through the redacting logger, with its error', async (t) => {
  const res = await server.inject({ url: '/test/boom' })
  t.equal(res.statusCode, 500)
  const mine = forRequest(String(res.headers['x-request-id']))
  t.ok(mine.some((l) => l.msg === 'request failed' || l.msg === 'request errored'))
  t.notOk(JSON.stringify(mine).includes('ghp_0123456789abcdefghijklmnopqrstuvwxyz'))
  t.ok(mine.some((l) => l.res && (l.res as { statusCode?: number }).statusCode === 500))
})

t.test('token-named fields are redacted at the top level and one level down', async (t) => {
  const out: string[] = []
  const log = pino(loggerOptions('info'), { write: (s: string) => void out.push(s) })
  log.info(
    { token: 'ghp_top', pat: 'ghp_pat', connection: { encrypted_token: 'v1.k.a.b.c', token: 'ghp_nested' } },
    'm',
  )
  const text = out.join('')
  for (const secret of ['ghp_top', 'ghp_pat', 'v1.k.a.b.c', 'ghp_nested'])
    t.notOk(text.includes(secret), secret)
  t.ok(text.includes('[REDACTED]'))
})

t.test('lines of both processes carry the same fields: process, pid and hostname', async (t) => {
  const { hostname } = await import('node:os')
  for (const name of ['api', 'worker'] as const) {
    const out: string[] = []
    pino(loggerOptions('info', name), { write: (s: string) => void out.push(s) }).info('m')
    t.match(
      JSON.parse(out.join('')),
      { process: name, pid: process.pid, hostname: hostname(), msg: 'm' },
      name,
    )
  }
})

t.test("a route's own lines carry the request id (request.log is made on first use)", async (t) => {
  const res = await server.inject({ url: '/test/says' })
  const id = String(res.headers['x-request-id'])
  t.match(forRequest(id), [
    { msg: 'said by the route', step: 1, level: 30 },
    { msg: 'said by a child', part: 'inner', level: 40 },
    { msg: 'said through a derived logger', level: 30 },
    { msg: 'request completed' },
  ])
  const quiet = await server.inject({ url: '/test/quiet' })
  t.same(
    forRequest(String(quiet.headers['x-request-id'])).map((l) => l.msg),
    ['at this route level'],
    "a route's logLevel still applies to request.log (and to its request completed line)",
  )
})

t.test('a Host header or URL with line-breaking characters is logged escaped', async (t) => {
  const res = await server.inject({
    url: '/health/live?q=a%C2%85b',
    headers: { host: 'evil\u0085FORGED\u202e' },
  })
  const [line] = forRequest(String(res.headers['x-request-id']))
  t.match(line, { req: { host: 'evil\\u0085FORGED\\u202e' } })
  t.notMatch(JSON.stringify(line), /[\u0085\u202e]/)
})

t.test('a body cut off by REQUEST_TIMEOUT_MS is logged once, with its method and URL', async (t) => {
  // A review's example: it was logged as "request rejected" 400 ECONNRESET, naming no request.
  const timed = await testConfig(t, {
    LOG_LEVEL: 'info',
    REQUEST_TIMEOUT_MS: '1000',
    GITHUB_WEBHOOK_SECRET: 'a-webhook-secret-for-tests',
  })
  const own: Record<string, unknown>[] = []
  const slow = Fastify(
    serverOptions(timed, {
      ...loggerOptions('info'),
      stream: { write: (line: string) => void own.push(JSON.parse(line)) },
    }),
  )
  await slow.register(app, { config: timed })
  await slow.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => slow.close())
  const { port } = slow.server.address() as { port: number }
  const { connect } = await import('node:net')
  const text = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(
        'POST /webhooks/github?token=ghp_secretsecret HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 100\r\n\r\n{"a":`,
      ),
    )
    let got = ''
    socket.on('data', (chunk) => {
      got += chunk.toString()
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve(got))
  })
  t.match(text, /^HTTP\/1\.1 408 /)
  let lines: Record<string, unknown>[] = []
  for (let i = 0; i < 200 && lines.length === 0; i++) {
    lines = own.filter((l) => typeof l.reqId === 'string')
    if (lines.length === 0) await new Promise((r) => setTimeout(r, 10))
  }
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], {
    msg: 'request aborted',
    req: { method: 'POST', url: '/webhooks/github?token=[REDACTED]' },
  })
  t.notOk(JSON.stringify(own).includes('ghp_secretsecret'), 'the query secret is redacted')
})
