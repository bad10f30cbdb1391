import net from 'node:net'
import t from 'tap'
import { build } from './helper.js'

const waiting: (() => void)[] = []
const finish = () => { for (const r of waiting.splice(0)) r() }
let runs = 0
const app = await build(t, {}, (server) => {
  const idem = server.idempotency('adv', { pendingSeconds: 2 })
  server.get('/adv/slow', { preHandler: idem.preHandler, onSend: idem.onSend }, async () => {
    runs++
    await new Promise<void>((resolve) => waiting.push(resolve))
    return { ran: true }
  })
  server.get('/adv/boom', { preHandler: idem.preHandler, onSend: idem.onSend }, async () => {
    throw new Error('boom')
  })
})
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as net.AddressInfo).port

t.test('client disconnect mid-request: claim must survive while handler runs', async (t) => {
  runs = 0
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  sock.write('GET /adv/slow HTTP/1.1\r\nHost: x\r\nIdempotency-Key: disc-1\r\n\r\n')
  for (let i = 0; i < 200 && waiting.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(runs, 1)
  sock.destroy()
  await new Promise((r) => setTimeout(r, 3500)) // > pendingSeconds (2 s), first handler still running
  setTimeout(finish, 500).unref()
  const retry = await app.inject({ url: '/adv/slow', headers: { 'idempotency-key': 'disc-1' } })
  console.log('retry status', retry.statusCode, retry.body, 'handler runs', runs)
  t.equal(retry.statusCode, 409, 'retry must wait while the first still runs')
  t.equal(runs, 1, 'handler ran once')
  finish()
})

t.test('error before onSend: claim released, no timer leak', async (t) => {
  const before = (process as any).getActiveResourcesInfo().filter((x: string) => x === 'Timeout').length
  const r = await app.inject({ url: '/adv/boom', headers: { 'idempotency-key': 'boom-1' } })
  t.equal(r.statusCode, 500)
  const keys = await app.redis.keys(`${app.config.REDIS_PREFIX}:idem:adv:*`)
  console.log('keys after boom', keys, 'timeouts before', before, 'after', (process as any).getActiveResourcesInfo().filter((x: string) => x === 'Timeout').length)
  const r2 = await app.inject({ url: '/adv/boom', headers: { 'idempotency-key': 'boom-1' } })
  t.equal(r2.statusCode, 500)
})

t.test('two concurrent identical requests: exactly one runs', async (t) => {
  runs = 0
  const a = app.inject({ url: '/adv/slow', headers: { 'idempotency-key': 'conc-1' } })
  const b = app.inject({ url: '/adv/slow', headers: { 'idempotency-key': 'conc-1' } })
  for (let i = 0; i < 200 && waiting.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
  await new Promise((r) => setTimeout(r, 200))
  finish()
  const codes = [(await a).statusCode, (await b).statusCode].sort()
  t.same(codes, [200, 409]); t.equal(runs, 1)
})
