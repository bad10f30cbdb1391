import type { JobDataByQueue, QueueName } from '@portico/core'
import { activeTracing } from '@portico/core'
import { type Job, Worker, type WorkerOptions } from 'bullmq'
import type { Processor, WorkerContext } from './context.js'
import { jobDuration } from './metrics.js'

/** Options of {@link registerWorker}; BullMQ worker options pass through. */
export type RegisterWorkerOptions = Omit<WorkerOptions, 'connection' | 'prefix'>

/**
 * Starts a BullMQ worker for one queue with Portico's conventions: the worker Redis connection,
 * the configured prefix and concurrency, structured logging of every outcome, and an `error`
 * listener (without one, a Redis hiccup would crash the process).
 */
export function registerWorker<Q extends QueueName>(
  ctx: WorkerContext,
  queue: Q,
  processor: Processor<Q>,
  opts: RegisterWorkerOptions = {},
): Worker<JobDataByQueue[Q]> {
  const logger = ctx.logger.child({ queue })
  const worker = new Worker<JobDataByQueue[Q]>(
    queue,
    async (job: Job<JobDataByQueue[Q]>, token?: string, signal?: AbortSignal) => {
      const { requestId } = (job.data ?? {}) as { requestId?: unknown }
      logger.info({ jobId: job.id, name: job.name, attempt: job.attemptsMade + 1, requestId }, 'job started')
      return processor(job, token, signal)
    },
    {
      connection: ctx.redis,
      prefix: ctx.config.REDIS_PREFIX,
      telemetry: activeTracing()?.bullmqTelemetry,
      concurrency: ctx.config.WORKER_CONCURRENCY,
      lockDuration: ctx.config.WORKER_LOCK_MS,
      stalledInterval: ctx.config.WORKER_STALLED_INTERVAL_MS,
      // A job whose worker died mid-run is returned to the queue, not failed, the first time
      // (a SIGKILL during a deploy must not cost the deploy).
      maxStalledCount: 2,
      ...opts,
    },
  )
  worker.on('error', (err) => logger.error({ err }, 'worker error'))
  worker.on('completed', (job) => {
    logger.info({ jobId: job.id }, 'job completed')
    recordJob(queue, 'completed', job)
  })
  worker.on('failed', (job) => {
    if (job) recordJob(queue, 'failed', job)
  })
  worker.on('failed', (job, err) =>
    logger.warn(
      {
        jobId: job?.id,
        attempt: job?.attemptsMade,
        // The error itself: the logger's serializer keeps its type, message, code and stack,
        // redacted (a trial: a plain object here was logged as "[object Object]").
        err,
      },
      'job failed',
    ),
  )
  return worker
}

/** Job processing time by queue and outcome (portico_job_duration_seconds). */
function recordJob(queue: string, outcome: 'completed' | 'failed', job: Job): void {
  if (job.processedOn === undefined) return
  const seconds = Math.max(0, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000)
  jobDuration.observe({ queue, outcome }, seconds)
}
