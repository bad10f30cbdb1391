import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { DEFAULT_JOB_OPTIONS, type JobDataByQueue, QUEUE_NAMES, type QueueName } from './queues.js'
import { activeTracing } from './tracing.js'

/** One typed BullMQ queue per name. */
export type Queues = { [Q in QueueName]: Queue<JobDataByQueue[Q]> }

/**
 * Opens every queue on a shared connection under `prefix`. Closing the queues leaves the
 * connection open: its owner closes it.
 */
export function createQueues(connection: Redis, prefix: string): Queues {
  const entries = QUEUE_NAMES.map((name) => [
    name,
    new Queue(name, {
      connection,
      prefix,
      defaultJobOptions: DEFAULT_JOB_OPTIONS,
      telemetry: activeTracing()?.bullmqTelemetry,
    }),
  ])
  return Object.fromEntries(entries) as Queues
}

/** Closes every queue. */
export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(Object.values(queues).map((q) => q.close()))
}
