import t from 'tap'
import { build } from './helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('every response carries a random request id', async (t) => {
  const app = await build(t)
  const a = await app.inject({ url: '/health/live' })
  const b = await app.inject({ url: '/no/such/route' })
  t.match(a.headers['x-request-id'], UUID)
  t.match(b.headers['x-request-id'], UUID, 'errors too')
  t.not(a.headers['x-request-id'], b.headers['x-request-id'])
})

t.test('a client-sent x-request-id is ignored without TRUST_PROXY', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/health/live', headers: { 'x-request-id': 'chosen-by-client' } })
  t.match(res.headers['x-request-id'], UUID)
})

t.test('behind a trusted proxy its id is kept when bounded and safe', async (t) => {
  const app = await build(t, { TRUST_PROXY: 'true' })
  const kept = await app.inject({ url: '/health/live', headers: { 'x-request-id': 'lb-1234:abcd.ef' } })
  t.equal(kept.headers['x-request-id'], 'lb-1234:abcd.ef')
  for (const bad of ['x'.repeat(129), 'has space', 'quote"d', 'new\tline', '']) {
    const res = await app.inject({ url: '/health/live', headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], UUID, `replaced: ${JSON.stringify(bad.slice(0, 20))}`)
  }
})

t.test('jobs enqueued by a request carry its id; jobs enqueued elsewhere do not', async (t) => {
  const app = await build(t, {}, (server) => {
    server.get('/test/enqueue', async (request) => {
      const jobId = await server.enqueue(
        'clone',
        { connectionId: 'c-1' },
        { jobId: 'clone-c-1', delay: 60_000 },
      )
      return { jobId, requestId: request.id }
    })
  })
  const res = await app.inject({ url: '/test/enqueue' })
  const { jobId, requestId } = res.json()
  t.equal(requestId, res.headers['x-request-id'])
  const job = await app.queues.clone.getJob(jobId)
  t.same(job?.data, { connectionId: 'c-1', requestId })
  const outside = await app.enqueue('clone', { connectionId: 'c-2' }, { jobId: 'clone-c-2', delay: 60_000 })
  t.same((await app.queues.clone.getJob(outside))?.data, { connectionId: 'c-2' })
})
