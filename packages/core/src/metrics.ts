import client from 'prom-client'

/**
 * Prometheus metrics both processes record, in prom-client's default registry (the API serves it
 * at `/metrics`, the worker at its health listener): GitHub calls and budget, dropped log lines,
 * process metrics; queue depth and cache lookups in the process that observes queues or caches
 * (the API). Each process defines its own on top: request durations in the API
 * (apps/api/src/plugins/app/metrics.ts), jobs, clones and analyses in the worker
 * (apps/worker/src/metrics.ts), so neither lists the other's empty series. Names follow
 * Prometheus conventions: seconds and bytes, `_total` counters. Defined once per process.
 */
export const metricsRegistry = client.register

let defaultsStarted = false
/** Process metrics (CPU, RSS, heap, event-loop lag, GC), once per process. */
export function collectProcessMetrics(): void {
  if (defaultsStarted) return
  defaultsStarted = true
  client.collectDefaultMetrics({ register: metricsRegistry })
}

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

/** Log lines dropped because stdout did not keep up (see `logDestination`). */
export const logLinesDropped = new client.Counter({
  name: 'portico_log_lines_dropped_total',
  help: 'Log lines dropped because more than 16 MiB of them were waiting for stdout.',
})

/** Something with BullMQ's `getJobCounts` (a Queue). */
export interface CountableQueue {
  name: string
  getJobCounts(...states: string[]): Promise<Record<string, number>>
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized']
const observedQueues = new Set<CountableQueue[]>()
/** `portico_queue_jobs`, registered when a process first observes queues. */
const queueJobsGauge = () =>
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
  if (!metricsRegistry.getSingleMetric('portico_queue_jobs')) queueJobsGauge()
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
/** `portico_cache_lookups_total`, registered when a process first observes a cache. */
const cacheLookupsCounter = () =>
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
  if (!metricsRegistry.getSingleMetric('portico_cache_lookups_total')) cacheLookupsCounter()
  const entry = { cache, stats }
  observedCaches.add(entry)
  return () => void observedCaches.delete(entry)
}

/** Prometheus text of the default registry. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() }
}
