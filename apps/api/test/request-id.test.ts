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
