import { startWorker } from '@portico/worker'
import { pino } from 'pino'
import t from 'tap'
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
