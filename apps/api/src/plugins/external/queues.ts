import {
  AppError,
  closeQueues,
  createQueues,
  createRedis,
  type JobDataByQueue,
  type QueueName,
  type Queues,
  waitAtMost,
} from '@portico/core'
import { type JobsOptions, QueueEvents } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    queues: Queues
    /**
     * Adds a job, failing fast with 503 QUEUE_UNAVAILABLE when Redis is away or slow: BullMQ
     * itself would wait for the connection indefinitely. Producers inside a request put its id in
     * the payload (`requestId`), so the worker logs it with the job: passed explicitly, since an
     * AsyncLocalStorage per request turns on promise hooks for every promise on Node 20.
     */
    enqueue<Q extends QueueName>(queue: Q, data: JobDataByQueue[Q], opts?: JobsOptions): Promise<string>
    /**
     * One shared `QueueEvents` of the deploy queue (its own blocking connection), for
     * `job.waitUntilFinished(deployEvents, ttl)`: requests wait on Redis events, not by polling.
     */
    deployEvents(): QueueEvents
  }
}

const ENQUEUE_TIMEOUT_MS = 3000

const unavailable = (cause?: unknown) =>
  new AppError(503, 'QUEUE_UNAVAILABLE', 'The job queue is unavailable. Try again shortly.', { cause })

/** BullMQ producers for every queue, on the API's fail-fast Redis connection. */
export default fp(
  async (fastify: FastifyInstance) => {
    const queues = createQueues(fastify.redis, fastify.config.REDIS_PREFIX)
    for (const queue of Object.values(queues)) {
      queue.on('error', (err) => fastify.log.warn({ err, queue: queue.name }, 'queue error'))
    }
    fastify.decorate('queues', queues)
    fastify.decorate('enqueue', async function enqueue<
      Q extends QueueName,
    >(name: Q, data: JobDataByQueue[Q], opts?: JobsOptions): Promise<string> {
      if (fastify.redis.status !== 'ready') throw unavailable()
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unavailable(new Error('enqueue timed out'))), ENQUEUE_TIMEOUT_MS)
      })
      try {
        const queue = queues[name] as unknown as Queues['clone']
        const job = await Promise.race([queue.add(name, data as never, opts), timeout])
        return job.id as string
      } catch (err) {
        throw (err as { statusCode?: number }).statusCode === 503 ? err : unavailable(err)
      } finally {
        clearTimeout(timer)
      }
    })
    // QueueEvents blocks on XREAD: a connection of its own that waits instead of failing fast.
    // Opened at start when Redis answers, else on first use (a QueueEvents whose connection never
    // became ready cannot be closed).
    let events: QueueEvents | undefined
    const open = () => {
      // The connection is a template: QueueEvents connects a duplicate of it (lazily, as the
      // template is), so nothing is opened here that close() would not end.
      const connection = createRedis(fastify.config.REDIS_URL, 'worker', {
        connectionName: 'portico-api-events',
        lazyConnect: true,
      })
      events = new QueueEvents('deploy', { connection, prefix: fastify.config.REDIS_PREFIX })
      events.on('error', (err) => fastify.log.warn({ err }, 'queue events error'))
      return events
    }
    if (fastify.redis.status === 'ready') open()
    fastify.decorate('deployEvents', () => events ?? open())
    fastify.addHook('onClose', async () => {
      // close() first awaits a ready connection: bounded.
      if (events) await waitAtMost(events.close(), 1000)
      await closeQueues(queues, fastify.redis)
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)
