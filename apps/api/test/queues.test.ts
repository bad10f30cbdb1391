import { once } from 'node:events'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { startWorker } from '@portico/worker'
import { pino } from 'pino'
import t from 'tap'
import { until } from './e2e.js'
import { build } from './helper.js'

t.test("a job enqueued through the API's queue plugin reaches a worker", async (t) => {
  const app = await build(t)
  let received: (data: unknown) => void = () => {}
  const got = new Promise<unknown>((resolve) => {
    received = resolve
  })
  const runtime = await startWorker(
    { ...app.config, workerQueues: ['clone'] },
    { clone: () => async (job) => received({ id: job.id, data: job.data }) },
    pino({ level: 'silent' }),
  )
  t.teardown(() => runtime.close())

  const jobId = await app.enqueue('clone', { connectionId: 'c-123' }, { jobId: 'clone-c-123' })
  t.equal(jobId, 'clone-c-123')
  t.same(await got, { id: 'clone-c-123', data: { connectionId: 'c-123' } })
  t.ok(await app.redis.exists(`${app.config.REDIS_PREFIX}:clone:clone-c-123`), 'keys live under REDIS_PREFIX')
})

t.test('the producer fails fast when Redis is unreachable', async (t) => {
  const app = await build(t, { REDIS_URL: 'redis://127.0.0.1:1' })
  const started = Date.now()
  await t.rejects(app.enqueue('clone', { connectionId: 'x' }), { statusCode: 503, code: 'QUEUE_UNAVAILABLE' })
  t.ok(
    Date.now() - started < 15_000,
    'rejected instead of queueing offline (the producer would otherwise wait forever)',
  )
})

for (const goodbye of ['answered', 'never answered'] as const) {
  t.test(
    `an API closed while its Redis connection attempt is in flight closes cleanly (goodbye ${goodbye})`,
    async (t) => {
      // A flake in health-github.test.ts: closing while a connection attempt was open let BullMQ
      // report that attempt's failure after queue.close() had removed the queues' 'error'
      // listeners, an unhandled error. A Redis that resets every connection for a while (the
      // attempt's error) and then accepts one without ever answering it (in flight at close); a
      // review's case: one that never answers our goodbye either (a dark path, a frozen Redis),
      // which ioredis ends on its own after its disconnect timeout.
      const sockets = new Set<Socket>()
      let resetting = true
      const server = createServer({ allowHalfOpen: goodbye === 'never answered' }, (socket) => {
        sockets.add(socket)
        socket.on('error', () => {})
        if (resetting) socket.resetAndDestroy()
        // Commands are read and ignored (a paused socket would never see the goodbye).
        else socket.resume()
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      t.teardown(async () => {
        for (const s of sockets) s.destroy()
        await new Promise((resolve) => server.close(resolve))
      })
      const { port } = server.address() as AddressInfo
      const app = await build(t, { REDIS_URL: `redis://127.0.0.1:${port}` })
      await once(app.redis, 'error')
      resetting = false
      await once(app.redis, 'connect')
      const unhandled: unknown[] = []
      const record = (err: unknown) => unhandled.push(err)
      process.on('uncaughtException', record).on('unhandledRejection', record)
      t.teardown(() => process.off('uncaughtException', record).off('unhandledRejection', record))
      await app.close()
      // BullMQ hears of the attempt's end from the connection's 'end' event.
      await until(
        async () => (app.redis.status === 'end' ? true : undefined),
        15_000,
        'the connection to end',
      )
      await new Promise((resolve) => setImmediate(resolve))
      t.same(unhandled, [], 'no unhandled error')
    },
  )
}
