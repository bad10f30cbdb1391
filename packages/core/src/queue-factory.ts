import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { DEFAULT_JOB_OPTIONS, type JobDataByQueue, QUEUE_NAMES, type QueueName } from './queues.js'
import { activeTracing } from './tracing.js'
import { waitAtMost } from './wait-at-most.js'

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

/**
 * Closes every queue. With their shared `connection`, also ends it first when it is not ready
 * (queues wait for a ready connection to close). An attempt in flight then fails, and BullMQ
 * reports that through each queue's 'error' listener, which close() removes: it is let land
 * first, for at most a second (else it is an unhandled error). A ready connection stays open.
 */
export async function closeQueues(queues: Queues, connection?: Redis): Promise<void> {
  const all = Object.values(queues)
  if (connection && connection.status !== 'ready') {
    const inFlight = connection.status === 'connecting' || connection.status === 'connect'
    connection.disconnect()
    if (inFlight) await waitAtMost(Promise.allSettled(all.map((q) => q.client)), 1000)
  }
  await Promise.all(all.map((q) => q.close()))
}
