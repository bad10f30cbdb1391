import {
  activeTracing,
  type Config,
  closeQueues,
  createQueues,
  createRedis,
  onStopSignals,
  type QueueName,
  serviceAddress,
  waitForRedis,
} from '@portico/core'
import { createDb } from '@portico/db'
import type { Worker } from 'bullmq'
import type { Logger } from 'pino'
import { retainAnalysisThreads } from './analysis/analyze-in-thread.js'
import type { ProcessorFactory, ProcessorRegistry, WorkerContext } from './context.js'
import { type HealthServer, startHealthServer } from './health/health-server.js'
import { LOCAL_SWEEP_EVERY_MS, startLocalCloneSweep } from './processors/maintenance.processor.js'
import { type RegisterWorkerOptions, registerWorker } from './register-worker.js'

/** How long start-up waits for Redis before giving up (ms). */
const REDIS_START_TIMEOUT_MS = 10_000

/** Queues whose in-flight jobs are cancelled (and handed back) on shutdown instead of awaited. */
const CANCELLED_ON_SHUTDOWN: ReadonlySet<QueueName> = new Set(['clone'])

/** A running worker process: its context, its BullMQ workers, and an ordered shutdown. */
export interface WorkerRuntime {
  ctx: WorkerContext
  workers: Worker[]
  /** Stops taking jobs, waits for in-flight ones (bounded), closes Redis, destroys the pool. */
  close(): Promise<void>
}

/**
 * Boots the worker: database, Redis, producer queues, and one BullMQ worker per queue that is
 * both in `WORKER_QUEUES` and in `processors`. Rejects, having closed what it opened, when Redis
 * does not answer within 10 s.
 */
export async function startWorker(
  config: Config,
  processors: ProcessorRegistry,
  logger: Logger,
  workerOptions: RegisterWorkerOptions = {},
  runtimeOptions: { localSweepEveryMs?: number } = {},
): Promise<WorkerRuntime> {
  const db = createDb(config)
  const redis = createRedis(config.REDIS_URL, 'worker')
  redis.on('error', (err) => logger.warn({ err }, 'redis connection error'))
  const producer = createRedis(config.REDIS_URL, 'worker')
  producer.on('error', () => {})
  await waitForRedis(redis, REDIS_START_TIMEOUT_MS).catch(async (err: unknown) => {
    redis.disconnect()
    producer.disconnect()
    await db.destroy()
    throw new Error(
      `the Redis in REDIS_URL (${serviceAddress(config.REDIS_URL)}) did not answer within ${REDIS_START_TIMEOUT_MS / 1000} s`,
      { cause: err },
    )
  })
  const queues = createQueues(producer, config.REDIS_PREFIX)
  const ctx: WorkerContext = { config, db, logger, queues, redis }

  const workers: Worker[] = []
  for (const queue of config.workerQueues) {
    const factory = processors[queue] as ProcessorFactory<QueueName> | undefined
    if (!factory) {
      logger.warn({ queue }, 'no processor for this queue; not consuming it')
      continue
    }
    workers.push(registerWorker(ctx, queue, factory(ctx), workerOptions) as unknown as Worker)
  }
  // Clones live on this host's disk: whoever consumes the clone queue sweeps its own CLONE_ROOT
  // (a local timer, since a scheduled job runs on one arbitrary worker, maybe on another host).
  const consumesClones = workers.some((w) => w.name === 'clone')
  const stopLocalSweep = consumesClones
    ? startLocalCloneSweep(ctx, runtimeOptions.localSweepEveryMs ?? LOCAL_SWEEP_EVERY_MS)
    : undefined
  // Every clone ends in an analysis: a thread started now spares the first job its start-up.
  const releaseAnalysisThreads = consumesClones ? retainAnalysisThreads() : undefined
  let health: HealthServer | undefined
  if (config.WORKER_HEALTH_PORT > 0) {
    health = await startHealthServer({
      host: config.WORKER_HEALTH_HOST,
      port: config.WORKER_HEALTH_PORT,
      maxBlockMs: config.WORKER_MAX_EVENT_LOOP_BLOCK_MS,
      redis,
      db,
    })
    logger.info({ url: health.url }, 'health listener started')
  }
  logger.info({ queues: workers.map((w) => w.name), prefix: config.REDIS_PREFIX }, 'worker started')

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      // Stop fetching and wait (bounded) for in-flight jobs; a worker's close() cannot be
      // upgraded to a forced one once started, so pausing comes first. Clones (long, and cheap
      // to restart) are cancelled through their AbortSignal and hand their job back to the
      // queue; deploys (short, and not to be cut between two GitHub writes) finish.
      const drained = Promise.all(workers.map((w) => w.pause(false)))
      for (const w of workers) {
        if (CANCELLED_ON_SHUTDOWN.has(w.name as QueueName)) w.cancelAllJobs('worker shutting down')
      }
      let timer: NodeJS.Timeout | undefined
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), config.SHUTDOWN_TIMEOUT_MS)
        }),
      ])
      clearTimeout(timer)
      if (timedOut) {
        // Jobs still running keep their lock until it expires; BullMQ's stalled check then
        // returns them to the queue for another worker, so nothing is lost.
        logger.warn(
          { timeoutMs: config.SHUTDOWN_TIMEOUT_MS },
          'in-flight jobs did not finish in time; forcing close',
        )
      }
      await Promise.all(workers.map((w) => w.close(timedOut)))
      await stopLocalSweep?.()
      await releaseAnalysisThreads?.()
      await health?.close()
      await closeQueues(queues, producer)
      await Promise.all([
        redis.quit().catch(() => redis.disconnect()),
        producer.quit().catch(() => producer.disconnect()),
      ])
      await db.destroy()
      // Last: the spans of the shutdown itself are flushed too.
      await activeTracing()
        ?.shutdown()
        .catch((err: unknown) => logger.warn({ err }, 'could not flush traces'))
      logger.info('worker stopped')
    })()
    return closing
  }
  return { ctx, workers, close }
}

/**
 * Closes the runtime on SIGTERM/SIGINT, waits for `logs.flush()` (the log lines still queued:
 * `flushLogs` in @portico/core), then exits 0 (1 if shutdown fails). Copies of the signal that
 * launchers forward (npm, tsx) are the same request; a signal more than a second later
 * (`REPEATED_SIGNAL_MS`) exits at once, after `logs.abandon()` (`abandonLogs`: a stalled log
 * reader cannot hold the exit).
 */
export function installSignalHandlers(
  runtime: WorkerRuntime,
  logger: Logger,
  logs: { flush(): Promise<unknown>; abandon(): void } = { flush: async () => {}, abandon: () => {} },
): void {
  onStopSignals({
    stop(signal) {
      logger.info({ signal }, 'shutting down')
      runtime
        .close()
        .then(
          () => 0,
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed')
            return 1
          },
        )
        .then(async (code) => {
          await logs.flush()
          process.exit(code)
        })
    },
    again(signal) {
      logger.warn({ signal }, 'second signal: exiting now')
      logs.abandon()
      process.exit(1)
    },
  })
}
