import { closeQueues, createQueues, createRedis, loggerOptions } from '@portico/core'
import { testConfig } from '@portico/testing'
import { pino } from 'pino'
import t from 'tap'
import { startWorker } from '../src/lib.js'

// A trial: every "job failed" line said `"err":{"type":"object","message":"[object Object]"}`;
// the reason (a database refusing the password) was only in Redis.
t.test('a failed job is logged with its reason, redacted', async (t) => {
  const config = await testConfig(t, { WORKER_QUEUES: 'maintenance' })
  const lines: Record<string, unknown>[] = []
  const logger = pino(loggerOptions('warn', 'worker'), {
    write: (line: string) => lines.push(JSON.parse(line)),
  })
  const token = `ghp_${'a'.repeat(36)}`
  const runtime = await startWorker(
    config,
    {
      maintenance: () => async () => {
        throw new Error(`password authentication failed for user "postgres" (${token})`)
      },
    },
    logger,
  )
  t.teardown(() => runtime.close())
  const redis = createRedis(config.REDIS_URL, 'producer')
  const queues = createQueues(redis, config.REDIS_PREFIX)
  t.teardown(async () => {
    await closeQueues(queues)
    redis.disconnect()
  })
  const job = await queues.maintenance.add('repair', { task: 'repair-stuck-connections' }, { attempts: 1 })
  for (let i = 0; i < 200 && !lines.some((l) => l.msg === 'job failed'); i++)
    await new Promise((resolve) => setTimeout(resolve, 25))
  const failed = lines.find((l) => l.msg === 'job failed') as { jobId: string; err: Record<string, string> }
  t.ok(failed, 'logged')
  t.equal(failed.jobId, job.id)
  t.equal(failed.err.type, 'Error')
  t.match(failed.err.message, /^password authentication failed for user "postgres"/)
  t.notMatch(JSON.stringify(failed), /ghp_a/, 'the token is redacted')
})
