import { AsyncLocalStorage } from 'node:async_hooks'
import {
  AppError,
  closeQueues,
  createQueues,
  type JobDataByQueue,
  type QueueName,
  type Queues,
} from '@portico/core'
import type { JobsOptions } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    queues: Queues
    /**
     * Adds a job, failing fast with 503 QUEUE_UNAVAILABLE when Redis is away or slow: BullMQ
     * itself would wait for the connection indefinitely. Inside a request, the payload gains the
     * request's id (`requestId`) unless it names one, so the worker logs it with the job.
     */
    enqueue<Q extends QueueName>(queue: Q, data: JobDataByQueue[Q], opts?: JobsOptions): Promise<string>
  }
}

const ENQUEUE_TIMEOUT_MS = 3000

const unavailable = (cause?: unknown) =>
  new AppError(503, 'QUEUE_UNAVAILABLE', 'The job queue is unavailable. Try again shortly.', { cause })

/** BullMQ producers for every queue, on the API's fail-fast Redis connection. */
export default fp(
  async (fastify: FastifyInstance) => {
    const queues = createQueues(fastify.redis, fastify.config.QUEUE_PREFIX)
    for (const queue of Object.values(queues)) {
      queue.on('error', (err) => fastify.log.warn({ err, queue: queue.name }, 'queue error'))
    }
    fastify.decorate('queues', queues)
    // The request a job is enqueued from, without threading it through every route.
    const current = new AsyncLocalStorage<{ requestId: string }>()
    fastify.addHook('onRequest', (request, _reply, done) => {
      current.run({ requestId: request.id }, done)
    })
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
        const requestId = current.getStore()?.requestId
        const payload = requestId && !('requestId' in data) ? { ...data, requestId } : data
        const job = await Promise.race([queue.add(name, payload as never, opts), timeout])
        return job.id as string
      } catch (err) {
        throw (err as { statusCode?: number }).statusCode === 503 ? err : unavailable(err)
      } finally {
        clearTimeout(timer)
      }
    })
    fastify.addHook('onClose', async () => {
      // Queues wait for their connection to become ready before closing; end it first if it never will.
      if (fastify.redis.status !== 'ready') fastify.redis.disconnect()
      await closeQueues(queues)
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)
