import client from 'prom-client'

/**
 * Prometheus metrics of both processes, in prom-client's default registry (the API serves it at
 * `/metrics`, the worker at its health listener). Names follow Prometheus conventions: seconds
 * and bytes, `_total` counters. Defined once per process (module singletons).
 */
export const metricsRegistry = client.register

let defaultsStarted = false
/** Process metrics (CPU, RSS, heap, event-loop lag, GC), once per process. */
export function collectProcessMetrics(): void {
  if (defaultsStarted) return
  defaultsStarted = true
  client.collectDefaultMetrics({ register: metricsRegistry })
}

/** HTTP request duration by route template (`routeOptions.url`, or `unmatched`), method and status. */
export const httpRequestDuration = new client.Histogram({
  name: 'portico_http_request_duration_seconds',
  help: 'API request duration in seconds, by route template, method and status code.',
  labelNames: ['method', 'route', 'status_code'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

/**
 * GitHub API calls by route template (`GET /repos/{owner}/{repo}`), status (0: no answer),
 * whether they were conditional (If-None-Match) and whether GitHub counted them against the
 * rate limit (a 304 to a conditional request is free).
 */
export const githubRequests = new client.Counter({
  name: 'portico_github_requests_total',
  help: 'GitHub API calls by route, status, conditional and counted.',
  labelNames: ['route', 'status', 'conditional', 'counted'] as const,
})

/** The latest `x-ratelimit-remaining` GitHub reported, per token kind (pat, oauth, app…). */
export const githubRateLimitRemaining = new client.Gauge({
  name: 'portico_github_rate_limit_remaining',
  help: 'Latest x-ratelimit-remaining seen from GitHub, by token kind.',
  labelNames: ['token_kind'] as const,
})

/** Jobs finished by queue and outcome (completed, failed), with their processing time. */
export const jobDuration = new client.Histogram({
  name: 'portico_job_duration_seconds',
  help: 'Job processing time (processedOn to finishedOn) in seconds, by queue and outcome.',
  labelNames: ['queue', 'outcome'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
})

/** Clone phase of a clone job: wall time and bytes on disk. */
export const cloneDuration = new client.Histogram({
  name: 'portico_clone_duration_seconds',
  help: 'git clone wall time in seconds (successful clones).',
  buckets: [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
})
export const cloneBytes = new client.Counter({
  name: 'portico_clone_bytes_total',
  help: 'Bytes written to disk by successful clones.',
})

/** Analysis of a clone: wall time, and how many ended early at a budget (truncated). */
export const analysisDuration = new client.Histogram({
  name: 'portico_analysis_duration_seconds',
  help: 'Repository analysis wall time in seconds.',
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
})
export const analysisTruncations = new client.Counter({
  name: 'portico_analysis_truncations_total',
  help: 'Analyses that stopped at a file, size or time budget (summary.truncated).',
})

/** Log lines dropped because stdout did not keep up (see `logDestination`). */
export const logLinesDropped = new client.Counter({
  name: 'portico_log_lines_dropped_total',
  help: 'Log lines dropped because more than LOG_QUEUE_BYTES were waiting for stdout.',
})

/** Something with BullMQ's `getJobCounts` (a Queue). */
export interface CountableQueue {
  name: string
  getJobCounts(...states: string[]): Promise<Record<string, number>>
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized']
const observedQueues = new Set<CountableQueue[]>()
new client.Gauge({
  name: 'portico_queue_jobs',
  help: 'Jobs in each queue by state, read at scrape time.',
  labelNames: ['queue', 'state'] as const,
  async collect() {
    const totals = new Map<string, Record<string, number>>()
    await Promise.all(
      [...observedQueues].flat().map(async (queue) => {
        const counts = await queue.getJobCounts(...QUEUE_STATES).catch(() => null)
        if (!counts) return
        const sum = totals.get(queue.name) ?? {}
        for (const state of QUEUE_STATES) sum[state] = (sum[state] ?? 0) + (counts[state] ?? 0)
        totals.set(queue.name, sum)
      }),
    )
    this.reset()
    for (const [queue, counts] of totals) {
      for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0)
    }
  },
})

/**
 * Reports `portico_queue_jobs{queue,state}` for `queues`, read from Redis at each scrape.
 * Returns the function that stops reporting them (call it when the queues close).
 */
export function observeQueueDepth(queues: CountableQueue[]): () => void {
  observedQueues.add(queues)
  return () => void observedQueues.delete(queues)
}

/** Lookup counts of an in-process cache (monotonic, owned by the cache). */
export interface CacheStats {
  readonly hits: number
  readonly misses: number
  /** Reads that skipped the cache (the session cache while Redis tracking is down). */
  readonly bypasses?: number
}
const observedCaches = new Set<{ cache: string; stats: CacheStats }>()
new client.Counter({
  name: 'portico_cache_lookups_total',
  help: 'In-process cache lookups by cache (session, read) and result (hit, miss, bypass), read at scrape time.',
  labelNames: ['cache', 'result'] as const,
  collect() {
    // Summed per cache name and set at scrape time: the hot path only bumps plain numbers.
    const totals = new Map<string, { hit: number; miss: number; bypass: number }>()
    for (const { cache, stats } of observedCaches) {
      const sum = totals.get(cache) ?? { hit: 0, miss: 0, bypass: 0 }
      sum.hit += stats.hits
      sum.miss += stats.misses
      sum.bypass += stats.bypasses ?? 0
      totals.set(cache, sum)
    }
    this.reset()
    for (const [cache, sum] of totals) {
      for (const [result, value] of Object.entries(sum)) this.inc({ cache, result }, value)
    }
  },
})

/**
 * Reports `portico_cache_lookups_total{cache,result}` from `stats` (read at each scrape).
 * Returns the function that stops reporting it (call it when the cache closes).
 */
export function observeCache(cache: string, stats: CacheStats): () => void {
  const entry = { cache, stats }
  observedCaches.add(entry)
  return () => void observedCaches.delete(entry)
}

/** Prometheus text of the default registry. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() }
}
