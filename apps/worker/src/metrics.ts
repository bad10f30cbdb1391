import client from 'prom-client'

/**
 * The worker's own Prometheus metrics, beside those of @portico/core's metrics.ts (GitHub calls
 * and budget, dropped log lines, process metrics), served at its health listener's `/metrics`.
 */

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
