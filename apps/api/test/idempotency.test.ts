import t from 'tap'
import { build } from './helper.js'

// The claim of a running request, on a test route whose handler finishes when the test says so.
const waiting: (() => void)[] = []
/** Lets every request waiting in the test route finish. */
const finish = () => {
  for (const resolve of waiting.splice(0)) resolve()
}
const app = await build(t, {}, (server) => {
  const idem = server.idempotency('test', { pendingSeconds: 2 })
  server.get('/test/slow', { preHandler: idem.preHandler, onSend: idem.onSend }, async () => {
    await new Promise<void>((resolve) => waiting.push(resolve))
    return { ran: true }
  })
  server.post('/test/echo', { preHandler: idem.preHandler, onSend: idem.onSend }, async (request) => ({
    echo: request.body,
  }))
})
const get = (key: string) => app.inject({ url: '/test/slow', headers: { 'idempotency-key': key } })
const claimKey = async (before: Set<string>) => {
  for (let i = 0; i < 400; i++) {
    const key = (await app.redis.keys(`${app.config.REDIS_PREFIX}:idem:test:*`)).find((k) => !before.has(k))
    if (key && waiting.length > 0) return key
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error('no claim was written')
}

t.test('a running request keeps its claim past the claim lifetime: retries wait, never run', async (t) => {
  // A review's example: a claim lapsing under a slow request let a retry run the deploy again.
  const before = new Set(await app.redis.keys('*'))
  const first = get('slow-one')
  await claimKey(before)
  await new Promise((r) => setTimeout(r, 3_000))
  // Should the retry run (the defect), its handler is let go too, and the test fails, not hangs.
  const release = setTimeout(finish, 1000)
  t.teardown(() => clearTimeout(release))
  const retry = await get('slow-one')
  t.equal(retry.statusCode, 409, 'still held after 3 s of a 2 s claim')
  t.equal(retry.json().code, 'IDEMPOTENCY_KEY_IN_USE')
  finish()
  t.equal((await first).statusCode, 200)
  const replay = await get('slow-one')
  t.equal(replay.headers['idempotent-replayed'], 'true')
})

t.test('a request whose claim lapsed neither drops nor overwrites the claim that took over', async (t) => {
  const before = new Set(await app.redis.keys('*'))
  const first = get('lapsed-one')
  const key = await claimKey(before)
  // The claim lapsed (its process stalled) and a retry elsewhere took the key over.
  const theirs = JSON.stringify({ state: 'pending', fingerprint: 'x', owner: 'another-request' })
  await app.redis.set(key, theirs, 'EX', 60)
  finish()
  t.equal((await first).statusCode, 200)
  t.equal(await app.redis.get(key), theirs, 'the other claim stands')
})

t.test('an answer kept before keys were sorted is still replayed to its retry', async (t) => {
  const { createHash } = await import('node:crypto')
  const body = { z: 1, a: { y: 2, b: 3 } }
  const sha = (text: string) => createHash('sha256').update(text).digest('hex')
  const key = `${app.config.REDIS_PREFIX}:idem:test:anonymous:${sha('kept-before')}`
  const kept = { echo: 'the first answer' }
  await app.redis.set(
    key,
    JSON.stringify({
      state: 'done',
      fingerprint: sha(JSON.stringify(body)),
      statusCode: 200,
      body: JSON.stringify(kept),
    }),
    'EX',
    60,
  )
  const retry = await app.inject({
    method: 'POST',
    url: '/test/echo',
    payload: body,
    headers: { 'idempotency-key': 'kept-before' },
  })
  t.equal(retry.statusCode, 200, retry.body)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.same(retry.json(), kept)
  const other = await app.inject({
    method: 'POST',
    url: '/test/echo',
    payload: { z: 2 },
    headers: { 'idempotency-key': 'kept-before' },
  })
  t.equal(other.statusCode, 422, 'another body is still refused')
})

t.test('a client that hangs up does not free the key while its request still runs', async (t) => {
  // A review's example: renewal stopped when the connection closed, so a retry ran the request twice.
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { connect } = await import('node:net')
  const before = new Set(await app.redis.keys('*'))
  const socket = connect(port, '127.0.0.1', () =>
    socket.write('GET /test/slow HTTP/1.1\r\nHost: x\r\nIdempotency-Key: hung-up\r\n\r\n'),
  )
  socket.on('error', () => {})
  await claimKey(before)
  socket.destroy()
  await new Promise((r) => setTimeout(r, 3_000))
  const release = setTimeout(finish, 1000)
  t.teardown(() => clearTimeout(release))
  const retry = await get('hung-up')
  t.equal(retry.statusCode, 409, 'still held after 3 s of a 2 s claim')
  finish()
})
