/** The queues Portico uses; a worker process consumes the subset named by WORKER_QUEUES. */
export const QUEUE_NAMES = ['clone', 'deploy', 'maintenance', 'webhooks'] as const
export type QueueName = (typeof QUEUE_NAMES)[number]

/** Clone (and analyse) one repository connection. Ids only: the worker reads everything else from Postgres. */
export interface CloneJobData {
  connectionId: string
  /**
   * A refresh of an existing connection (fetch the default branch's latest commit and re-analyse,
   * keeping the previous analysis visible until the new one lands) rather than its first clone.
   */
  refresh?: true
  /** Id of the API request that enqueued the job (for the logs), when there was one. */
  requestId?: string
}

/** Open the pull request for one deployment row. */
export interface DeployJobData {
  deploymentId: string
  /** Id of the API request that enqueued the job (for the logs), when there was one. */
  requestId?: string
}

/** Periodic housekeeping. */
export interface MaintenanceJobData {
  task:
    | 'expire-clones'
    | 'repair-stuck-connections'
    | 'repair-stuck-deployments'
    | 'rotate-keys'
    | 'reconcile-deployments'
    | 'prune-webhook-deliveries'
  /** Id of the API request that enqueued the job (for the logs), when there was one. */
  requestId?: string
}

/** Process one stored GitHub webhook delivery (`webhook_deliveries.delivery_id`); the payload stays in Postgres. */
export interface WebhookJobData {
  deliveryId: string
  /** Id of the API request that enqueued the job (for the logs), when there was one. */
  requestId?: string
}

/** Maps each queue to its job payload type. */
export interface JobDataByQueue {
  clone: CloneJobData
  deploy: DeployJobData
  maintenance: MaintenanceJobData
  webhooks: WebhookJobData
}

/** Bounded retention so Redis memory stays flat: keep recent history for Bull Board, drop the rest. */
export const DEFAULT_JOB_OPTIONS = {
  removeOnComplete: { age: 24 * 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
} as const

/** Job id for a clone of one connection: at most one clone job per connection exists at a time. */
export const cloneJobId = (connectionId: string): string => `clone-${connectionId}`
/** Job id for one deployment. */
export const deployJobId = (deploymentId: string): string => `deploy-${deploymentId}`

/**
 * BullMQ options of a clone job (`jobId` from {@link cloneJobId}): auth failures and limits stop
 * at once (UnrecoverableError); network failures back off 5 s, 10 s.
 */
export function cloneJobOptions(jobId: string) {
  return { jobId, attempts: 3, backoff: { type: 'exponential', delay: 5000 } } as const
}

/** BullMQ deduplication id of a connection's refresh: one refresh job per connection at a time. */
export const refreshDedupId = (connectionId: string): string => `refresh-${connectionId}`

/**
 * BullMQ options of a refresh job (queue `clone`, data `{ connectionId, refresh: true }`).
 * BullMQ's deduplication (https://docs.bullmq.io/guide/jobs/deduplication) keeps one job per
 * connection while it waits or runs: an `add` meanwhile returns that job instead of a new one.
 * With `debounceMs` the job waits that long first, so a burst of requests (pushes) makes one
 * refresh that fetches whatever is newest when it runs; `keepLastIfActive` queues exactly one
 * follow-up when a request arrives while a refresh is already running (its fetch may predate the
 * push). Retries as a clone does.
 */
export function refreshJobOptions(connectionId: string, debounceMs = 0) {
  return {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5000 },
    ...(debounceMs > 0 ? { delay: debounceMs } : {}),
    deduplication: { id: refreshDedupId(connectionId), keepLastIfActive: debounceMs > 0 },
  } as const
}

/**
 * BullMQ options of a deploy job (`jobId` from {@link deployJobId}): one job per deployment, a
 * few attempts with backoff for transient GitHub failures (rate limits delay the job without
 * using attempts).
 */
export function deployJobOptions(jobId: string) {
  return { jobId, attempts: 3, backoff: { type: 'exponential', delay: 2000 } } as const
}

/**
 * Job id for one webhook delivery: a redelivery (same `X-GitHub-Delivery`) finds the job still
 * retained instead of adding a second one.
 */
export const webhookJobId = (deliveryId: string): string => `webhook-${deliveryId}`

/** BullMQ options of a webhook job: GitHub calls it makes may fail transiently (5 s, 10 s, 20 s). */
export function webhookJobOptions(jobId: string) {
  return { jobId, attempts: 4, backoff: { type: 'exponential', delay: 5000 } } as const
}
