import type { Config, JobDataByQueue, QueueName, Queues } from '@portico/core'
import type { Db } from '@portico/db'
import type { Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'

/** What every processor may use; created once per worker process. */
export interface WorkerContext {
  config: Config
  db: Db
  logger: Logger
  /** Producer-side queues, for processors that enqueue or schedule follow-up work. */
  queues: Queues
  /** The worker's own Redis connection (maxRetriesPerRequest: null). */
  redis: Redis
}

/**
 * Handles one job of queue `Q`. Must be idempotent: BullMQ delivers at least once. `token` is the
 * job's lock token; `signal` is BullMQ's processor AbortSignal, aborted when the worker shuts
 * down (`cancelAllJobs`): a processor that honours it hands its job back to the queue.
 */
export type Processor<Q extends QueueName> = (
  job: Job<JobDataByQueue[Q]>,
  token?: string,
  signal?: AbortSignal,
) => Promise<unknown>

/** Builds a queue's processor from the worker context. */
export type ProcessorFactory<Q extends QueueName> = (ctx: WorkerContext) => Processor<Q>

/** The processors a worker process can run, by queue. */
export type ProcessorRegistry = { [Q in QueueName]?: ProcessorFactory<Q> }
