import {
  analysisDuration,
  analysisTruncations,
  cloneBytes,
  cloneDuration,
  clonePath,
  decrypt,
  isUuid,
  parseRepoUrl,
  removeClone,
  truncateMessage,
} from '@portico/core'
import { type ConnectionRow, findConnection, updateConnectionIfStatus } from '@portico/db'
import { type Job, UnrecoverableError } from 'bullmq'
import { analyzeRepository } from '../analysis/analyze.js'
import { CloneError, cloneRepository, directorySize } from '../clone/git-clone.js'
import type { ProcessorFactory, WorkerContext } from '../context.js'

/** Progress is written at most this often; the same tick notices a deleted row (cancellation). */
const PROGRESS_TICK_MS = 1000
/** A running clone touches its row at least this often, so the repair sweep can tell it is alive. */
const HEARTBEAT_MS = 5000
/** Share of `progress` the clone phase covers; analysis takes it from here to 100. */
const CLONE_SHARE = 90

export type CloneOutcome =
  | { outcome: 'analyzed' | 'cloned'; commitSha: string }
  | { outcome: 'skipped'; reason: string }

/** Replaces the token (whatever its shape) and anything token-like, and caps the length. */
function safeMessage(text: string, token: string | undefined): string {
  const scrubbed = token ? text.split(token).join('[REDACTED]') : text
  return truncateMessage(scrubbed, 500)
}

function failureMessage(ctx: WorkerContext, err: unknown): string {
  if (!(err instanceof CloneError)) return 'The clone failed unexpectedly.'
  switch (err.kind) {
    case 'timeout':
      return `The clone took longer than ${ctx.config.CLONE_TIMEOUT_SECONDS} s (CLONE_TIMEOUT_SECONDS) and was stopped.`
    case 'too-large':
      return `The repository is larger than ${ctx.config.CLONE_MAX_MB} MiB (CLONE_MAX_MB); the clone was stopped.`
    case 'network':
    case 'git':
      return err.detail ? `${err.message} (${err.detail})` : err.message
    default:
      return err.message
  }
}

/**
 * Clones a connection's repository into its clone directory and analyses it:
 * `pending → cloning → cloned → analyzed`, or `failed`. Idempotent and at-least-once safe: every
 * run starts from a clean directory, status changes are compare-and-set (a row deleted, expired
 * or failed meanwhile is never resurrected, and its directory is removed), and a row that is gone
 * mid-clone cancels the clone within a second.
 */
export const cloneRepoProcessor: ProcessorFactory<'clone'> = (ctx) => async (job) => runClone(ctx, job)

async function runClone(ctx: WorkerContext, job: Job<{ connectionId: string }>): Promise<CloneOutcome> {
  const { connectionId } = job.data
  if (typeof connectionId !== 'string' || !isUuid(connectionId)) {
    throw new UnrecoverableError('clone job without a valid connection id')
  }
  const row = await findConnection(ctx.db, connectionId)
  if (!row) return { outcome: 'skipped', reason: 'connection deleted' }
  if (row.status === 'analyzed' || row.status === 'expired' || row.status === 'failed') {
    return { outcome: 'skipped', reason: `connection is ${row.status}` }
  }
  const dest = clonePath(ctx.config.cloneRoot, row.tenant_id, row.id)
  const log = ctx.logger.child({ connectionId, jobId: job.id })

  const started = await updateConnectionIfStatus(ctx.db, row.id, ['pending', 'cloning', 'cloned'], {
    status: 'cloning',
    progress: 0,
    clone_path: null,
    commit_sha: null,
    error_message: null,
  })
  if (!started) return { outcome: 'skipped', reason: 'connection changed before the clone started' }
  await job.updateProgress(0)

  let token: string | undefined
  const cancel = new AbortController()
  const ticker = progressTicker(ctx, job, row.id, cancel)
  try {
    token = decrypt(ctx.config.keyring, row.encrypted_token)
    const { cloneUrl } = parseRepoUrl(row.repo_url, ctx.config.GITHUB_URL)
    const cloneStarted = performance.now()
    const { commitSha } = await cloneRepository({
      url: cloneUrl,
      token,
      dest,
      timeoutMs: ctx.config.CLONE_TIMEOUT_SECONDS * 1000,
      maxBytes: ctx.config.CLONE_MAX_MB * 1024 * 1024,
      signal: cancel.signal,
      onProgress: (percent) => ticker.set(Math.floor((percent * CLONE_SHARE) / 100)),
    })
    await ticker.stop()
    cloneDuration.observe((performance.now() - cloneStarted) / 1000)
    cloneBytes.inc(await directorySize(dest).catch(() => 0))
    const cloned = await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
      status: 'cloned',
      progress: CLONE_SHARE,
      clone_path: dest,
      commit_sha: commitSha,
      expires_at: new Date(Date.now() + ctx.config.CLONE_TTL_HOURS * 3600_000),
    })
    if (!cloned) {
      await removeClone(dest)
      return { outcome: 'skipped', reason: 'connection deleted during the clone' }
    }
    await job.updateProgress(CLONE_SHARE)
    log.info({ commitSha }, 'repository cloned')
    return await analyze(ctx, job, cloned, dest, commitSha)
  } catch (err) {
    await ticker.stop()
    await removeClone(dest)
    // A DELETE removes the directory under git's feet: that failure is a cancellation too.
    const cancelled = err instanceof CloneError && err.kind === 'cancelled'
    if (cancelled || !(await findConnection(ctx.db, row.id))) {
      return { outcome: 'skipped', reason: 'connection deleted during the clone' }
    }
    return await recordFailure(ctx, job, row, err, token)
  }
}

async function analyze(
  ctx: WorkerContext,
  job: Job,
  row: ConnectionRow,
  dest: string,
  commitSha: string,
): Promise<CloneOutcome> {
  let result: Awaited<ReturnType<typeof analyzeRepository>>
  const analysisStarted = performance.now()
  try {
    result = await analyzeRepository(dest)
    analysisDuration.observe((performance.now() - analysisStarted) / 1000)
    if (result.summary.truncated) analysisTruncations.inc()
  } catch (err) {
    // The clone itself is good; keep it usable and say why there is no summary.
    ctx.logger.warn({ connectionId: row.id, err: { message: (err as Error).message } }, 'analysis failed')
    await updateConnectionIfStatus(ctx.db, row.id, ['cloned'], {
      error_message: truncateMessage(`Analysis failed: ${(err as Error).message}`, 500),
    })
    return { outcome: 'cloned', commitSha }
  }
  const done = await updateConnectionIfStatus(ctx.db, row.id, ['cloned'], {
    status: 'analyzed',
    progress: 100,
    analysis_summary: JSON.stringify(result.summary),
    routes_count: result.routesCount,
    components_count: result.componentsCount,
    endpoints_count: result.endpointsCount,
  })
  if (!done) {
    await removeClone(dest)
    return { outcome: 'skipped', reason: 'connection deleted during the analysis' }
  }
  await job.updateProgress(100)
  return { outcome: 'analyzed', commitSha }
}

/**
 * Records a failed attempt. Permanent failures (auth, not found, limits) and the last attempt
 * mark the row `failed`; earlier transient ones put it back to `pending` for BullMQ's backoff.
 * What is thrown (and so stored by BullMQ) is the same redacted message.
 */
async function recordFailure(
  ctx: WorkerContext,
  job: Job,
  row: ConnectionRow,
  err: unknown,
  token: string | undefined,
): Promise<never> {
  const message = safeMessage(failureMessage(ctx, err), token)
  // Unknown errors (a database hiccup) are retried; a bad stored URL or key is not.
  const status = (err as { statusCode?: unknown }).statusCode
  const permanent =
    err instanceof CloneError ? err.permanent : typeof status === 'number' && status >= 400 && status < 500
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
  if (permanent || lastAttempt) {
    await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
      status: 'failed',
      progress: 0,
      clone_path: null,
      error_message: message,
    })
    if (permanent) throw new UnrecoverableError(message)
    throw new Error(message)
  }
  await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
    status: 'pending',
    progress: 0,
    error_message: safeMessage(`${message} Retrying.`, token),
  })
  throw new Error(message)
}

/**
 * Writes the latest progress to the row and the job at most once per tick, and touches the row
 * every heartbeat. When the row is gone (DELETE) or no longer `cloning`, aborts the clone.
 */
function progressTicker(ctx: WorkerContext, job: Job, id: string, cancel: AbortController) {
  let latest = 0
  let written = 0
  let lastWrite = Date.now()
  let running: Promise<void> = Promise.resolve()
  const tick = async () => {
    if (latest === written && Date.now() - lastWrite < HEARTBEAT_MS) return
    const progress = latest
    const row = await updateConnectionIfStatus(ctx.db, id, ['cloning'], { progress })
    if (!row) {
      cancel.abort()
      return
    }
    written = progress
    lastWrite = Date.now()
    await job.updateProgress(progress)
  }
  const timer = setInterval(() => {
    running = running
      .then(tick)
      .catch((err: unknown) =>
        ctx.logger.warn({ err: { message: (err as Error).message } }, 'progress update failed'),
      )
  }, PROGRESS_TICK_MS)
  return {
    set(percent: number) {
      if (percent > latest) latest = percent
    },
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
