import type { JobsOptions } from 'bullmq'

/**
 * BullMQ options of a deploy job: one job per deployment (`jobId`), a few attempts with
 * backoff for transient GitHub failures (rate limits delay the job without using attempts).
 */
export function deployJobOptions(jobId: string): JobsOptions {
  return { jobId, attempts: 3, backoff: { type: 'exponential', delay: 2000 } }
}
