import { Worker } from 'node:worker_threads'
import { type AnalysisLimits, type AnalysisResult, DEFAULT_ANALYSIS_LIMITS } from './analyze.js'

export interface AnalyzeInThreadOptions {
  /** Wall-clock budget in ms (ANALYSIS_TIMEOUT_SECONDS × 1000). */
  timeoutMs: number
  limits?: AnalysisLimits
  /** Aborting terminates the thread and rejects with the signal's reason. */
  signal?: AbortSignal
}

/** How long past its deadline a thread may take to finish the file it is in before it is terminated. */
const GRACE_MS = 2000

// Sources run through tsx (tests, `npm start`, `npm run worker`), the build runs .js: the thread's
// entry has this module's own extension.
const FROM_SOURCE = import.meta.url.endsWith('.ts')
const THREAD_ENTRY = new URL(`./analysis.thread${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url)

/**
 * A thread running the TypeScript entry: on Node 20 a worker thread does not inherit the loader
 * hooks tsx registered in the main thread, so the thread registers tsx itself, then imports it.
 */
function startThread(workerData: unknown): Worker {
  if (!FROM_SOURCE) return new Worker(THREAD_ENTRY, { workerData })
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'))
  const bootstrap = `import(${tsx}).then(({ register }) => { register(); return import(${JSON.stringify(THREAD_ENTRY.href)}) })`
  return new Worker(bootstrap, { eval: true, workerData })
}

/** An empty summary for an analysis the budget ended before any result came back. */
function timedOutResult(): AnalysisResult {
  return {
    summary: {
      frameworks: [],
      routes: [],
      components: [],
      endpoints: 0,
      files_scanned: 0,
      truncated: true,
      timed_out: true,
    },
    routesCount: 0,
    componentsCount: 0,
    endpointsCount: 0,
  }
}

/**
 * Runs {@link analyzeRepository} in a worker thread with a wall-clock budget, so neither a slow
 * pattern nor a huge tree can block the worker's event loop (and so its job locks and health
 * check). The thread stops between files at the deadline and returns what it found (`timed_out`,
 * `truncated`); a thread still busy `GRACE_MS` later is terminated and the result is an empty
 * summary marked `timed_out`. Both are results, not errors: the connection still ends `analyzed`.
 *
 * @throws the thread's own error (unreadable root…), or the signal's reason when aborted.
 */
export function analyzeInThread(root: string, opts: AnalyzeInThreadOptions): Promise<AnalysisResult> {
  const limits: AnalysisLimits = {
    ...(opts.limits ?? DEFAULT_ANALYSIS_LIMITS),
    deadline: Date.now() + opts.timeoutMs,
  }
  return new Promise<AnalysisResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason)
      return
    }
    const worker = startThread({ root, limits })
    let settled = false
    const settle = (fn: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      fn()
      void worker.terminate()
    }
    const timer = setTimeout(() => settle(() => resolve(timedOutResult())), opts.timeoutMs + GRACE_MS)
    const onAbort = () => settle(() => reject(opts.signal?.reason))
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    worker.once('message', (result: AnalysisResult) => settle(() => resolve(result)))
    worker.once('error', (err) => settle(() => reject(err)))
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`the analysis thread exited (code ${code}) without a result`))),
    )
  })
}
