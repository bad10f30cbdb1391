import { Worker } from 'node:worker_threads'
import { type AnalysisLimits, type AnalysisResult, DEFAULT_ANALYSIS_LIMITS } from './analyze.js'

export interface AnalyzeInThreadOptions {
  /** Wall-clock budget in ms (ANALYSIS_TIMEOUT_SECONDS × 1000). */
  timeoutMs: number
  limits?: AnalysisLimits
  /** Aborting terminates the thread and rejects with the signal's reason. */
  signal?: AbortSignal
  /** How long past the budget a thread still busy is given before it is terminated (ms, default 2000). */
  graceMs?: number
}

/** What the main thread posts to an analysis thread. */
export interface AnalysisRequest {
  id: number
  root: string
  limits: AnalysisLimits
}

/** What an analysis thread posts back: a result (with its heap in use after it) or an error message. */
export type AnalysisReply =
  | { id: number; result: AnalysisResult; heapBytes: number }
  | { id: number; error: string }

/** How long past its deadline a thread may take to finish the file it is in before it is terminated. */
const GRACE_MS = 2000
/** Idle threads kept for the next analyses; concurrent analyses beyond this start their own. */
const MAX_IDLE = 2
/** Analyses a thread runs before it is replaced, so nothing a long life accumulates lingers. */
const MAX_USES = 200
/** A thread whose heap is this large after an analysis is replaced rather than kept. */
const MAX_HEAP_BYTES = 256 * 1024 * 1024

// Sources run through tsx (tests, `npm start`, `npm run worker`), the build runs .js: the thread's
// entry has this module's own extension.
const FROM_SOURCE = import.meta.url.endsWith('.ts')
const THREAD_ENTRY = new URL(`./analysis.thread${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url)

/**
 * A thread running the TypeScript entry: on Node 20 a worker thread does not inherit the loader
 * hooks tsx registered in the main thread, so the thread registers tsx itself, then imports it.
 */
function startThread(): Worker {
  started += 1
  if (!FROM_SOURCE) return new Worker(THREAD_ENTRY)
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'))
  const bootstrap = `import(${tsx}).then(({ register }) => { register(); return import(${JSON.stringify(THREAD_ENTRY.href)}) })`
  return new Worker(bootstrap, { eval: true })
}

interface PooledThread {
  worker: Worker
  uses: number
  /** While parked: takes the thread out of the pool if it dies. */
  drop?: () => void
}

/** Ends a thread; an error it raises while ending has nowhere to go and is ignored. */
function terminate(worker: Worker): Promise<unknown> {
  worker.on('error', () => {})
  return worker.terminate()
}

/**
 * Started threads waiting for an analysis (unref'd: they never keep the process alive). Starting
 * one costs tens of ms of module loading (more under tsx), which every clone job used to pay.
 */
const idle: PooledThread[] = []
/** Runtimes that asked for a thread to be kept ready ({@link retainAnalysisThreads}). */
let retainers = 0
let nextId = 0
let started = 0

/** Threads started so far by this process and threads parked now (for tests and diagnostics). */
export function analysisThreadCounts(): { started: number; idle: number } {
  return { started, idle: idle.length }
}

/** An idle thread, or a new one; it is ref'd while it works. */
function takeThread(): PooledThread {
  const thread = idle.pop()
  if (!thread) return { worker: startThread(), uses: 0 }
  if (thread.drop) thread.worker.off('error', thread.drop).off('exit', thread.drop)
  thread.drop = undefined
  thread.worker.ref()
  return thread
}

/** Parks a healthy thread for the next analysis, or terminates it when the pool is full. */
function parkThread(thread: PooledThread): void {
  if (idle.length >= MAX_IDLE) {
    void terminate(thread.worker)
    return
  }
  thread.worker.unref()
  // A parked thread that dies (or fails to start) just leaves the pool.
  thread.drop = () => {
    const at = idle.indexOf(thread)
    if (at >= 0) idle.splice(at, 1)
  }
  thread.worker.on('error', thread.drop).on('exit', thread.drop)
  idle.push(thread)
}

/** Terminates a thread (timed out, aborted, failed or worn out) and readies a replacement. */
function discardThread(thread: PooledThread): void {
  void terminate(thread.worker)
  if (retainers > 0 && idle.length === 0) parkThread({ worker: startThread(), uses: 0 })
}

/**
 * Keeps an analysis thread started and ready for as long as the caller (a worker runtime that
 * consumes the clone queue) runs, so a job does not wait for a thread to load its modules.
 * @returns a release function; once every retainer has released, idle threads are terminated.
 */
export function retainAnalysisThreads(): () => Promise<void> {
  retainers += 1
  if (idle.length === 0) parkThread({ worker: startThread(), uses: 0 })
  let released = false
  return async () => {
    if (released) return
    released = true
    retainers -= 1
    if (retainers > 0) return
    const threads = idle.splice(0)
    await Promise.all(threads.map((t) => terminate(t.worker)))
  }
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
 * `truncated`); a thread still busy `graceMs` later is terminated and the result is an empty
 * summary marked `timed_out`. Both are results, not errors: the connection still ends `analyzed`.
 * Threads are reused between analyses; one that timed out, was aborted or failed is terminated
 * and never reused.
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
    const thread = takeThread()
    const { worker } = thread
    const id = ++nextId
    let settled = false
    const settle = (fn: () => void, reusable: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      worker.off('message', onMessage).off('error', onError).off('exit', onExit)
      fn()
      if (reusable) parkThread(thread)
      else discardThread(thread)
    }
    const onMessage = (reply: AnalysisReply) => {
      if (reply.id !== id) return
      thread.uses += 1
      if ('error' in reply) {
        settle(() => reject(new Error(reply.error)), thread.uses < MAX_USES)
        return
      }
      const reusable = thread.uses < MAX_USES && reply.heapBytes < MAX_HEAP_BYTES
      settle(() => resolve(reply.result), reusable)
    }
    const onError = (err: Error) => settle(() => reject(err), false)
    const onExit = (code: number) =>
      settle(() => reject(new Error(`the analysis thread exited (code ${code}) without a result`)), false)
    // Past the grace period the thread is stuck (a pathological pattern): terminate it.
    const timer = setTimeout(
      () => settle(() => resolve(timedOutResult()), false),
      opts.timeoutMs + (opts.graceMs ?? GRACE_MS),
    )
    const onAbort = () => settle(() => reject(opts.signal?.reason), false)
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    worker.on('message', onMessage).once('error', onError).once('exit', onExit)
    worker.postMessage({ id, root, limits } satisfies AnalysisRequest)
  })
}
