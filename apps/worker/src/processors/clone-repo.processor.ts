import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import {
  type CloneJobData,
  classifyGithubError,
  clonePath,
  createOctokit,
  decrypt,
  GithubApp,
  githubErrorStatus,
  githubErrorToAppError,
  isAppError,
  isUuid,
  parseRepoUrl,
  removeClone,
  truncateMessage,
} from '@portico/core'
import {
  type ConnectionRow,
  type ConnectionStatus,
  failCloneForToken,
  failRefresh,
  findConnection,
  isUniqueViolation,
  landRefresh,
  markRefreshRunning,
  REFRESHABLE_STATUSES,
  requeueRefresh,
  updateConnectionIfStatus,
} from '@portico/db'
import { DelayedError, type Job, UnrecoverableError } from 'bullmq'
import type { AnalysisResult } from '../analysis/analyze.js'
import { analyzeInThread } from '../analysis/analyze-in-thread.js'
import { APP_ACCESS_REVOKED, APP_ACCESS_REVOKED_MESSAGE } from '../clone/app-access-revoked.js'
import { CloneError, cloneRepository, fetchLatest, hasClone, promoteStaged } from '../clone/git-clone.js'
import type { ProcessorFactory, WorkerContext } from '../context.js'
import { analysisDuration, analysisTruncations, cloneBytes, cloneDuration } from '../metrics.js'

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
  // Our own sentences (APP_ACCESS_REVOKED…) are meant for people; anything else stays generic.
  if (isAppError(err) && err.statusCode < 500) return err.message
  if (!(err instanceof CloneError)) return 'The clone failed unexpectedly.'
  switch (err.kind) {
    case 'timeout':
      return `The clone took longer than ${ctx.config.CLONE_TIMEOUT_SECONDS} s (CLONE_TIMEOUT_SECONDS) and was stopped.`
    case 'too-large':
      return `The repository is larger than ${ctx.config.CLONE_MAX_MB} MiB (CLONE_MAX_MB); the clone was stopped.`
    case 'too-many-files':
      return `The repository has more than ${ctx.config.CLONE_MAX_FILES} files (CLONE_MAX_FILES); it was not checked out.`
    default:
      // git's own output (err.detail) is logged, never stored: the row says what a person can act on.
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
export const cloneRepoProcessor: ProcessorFactory<'clone'> = (ctx) => {
  const app = ctx.config.githubApp
    ? new GithubApp(
        ctx.config.githubApp,
        { apiUrl: ctx.config.GITHUB_API_URL, githubUrl: ctx.config.GITHUB_URL },
        // Each clone mints its own token, kept nowhere once the job is over.
        { cacheTokens: false },
      )
    : null
  return (job, token, signal) => processClone(ctx, app, job, token, signal)
}

async function processClone(
  ctx: WorkerContext,
  app: GithubApp | null,
  job: Job<{ connectionId: string }>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<CloneOutcome> {
  try {
    return await runClone(ctx, app, job, signal)
  } catch (err) {
    if (!(err instanceof HandBack)) throw err
    // Back to the queue (for another worker on shutdown), without using an attempt.
    ctx.logger.info(
      { connectionId: job.data.connectionId, jobId: job.id },
      `clone handed back: ${err.message}`,
    )
    await job.moveToDelayed(Date.now(), token)
    throw new DelayedError()
  }
}

/**
 * Run the job again without using an attempt: the worker is shutting down (BullMQ aborted the
 * processor's signal), or the PAT was replaced while the attempt with the old one failed.
 */
class HandBack extends Error {}
const shutdownHandBack = () => new HandBack('the worker is shutting down')
const replacedHandBack = () => new HandBack('the PAT was replaced during the attempt; again with the new one')

/** Puts a clone interrupted by shutdown back to `pending` and signals the hand-back. */
async function handBack(ctx: WorkerContext, id: string, dest: string): Promise<never> {
  await removeClone(dest)
  await updateConnectionIfStatus(ctx.db, id, ['cloning', 'cloned'], {
    status: 'pending',
    progress: 0,
    clone_path: null,
    error_message: null,
  })
  throw shutdownHandBack()
}

/** What an App connection's clone token may do: read this one repository, nothing else. */
const APP_CLONE_PERMISSIONS = { contents: 'read', metadata: 'read' } as const

/**
 * The token a clone or refresh reaches GitHub with: a freshly minted, down-scoped installation
 * token for an App connection, the decrypted PAT otherwise; `ended()` is thrown when a PAT
 * connection keeps no token any more.
 */
async function cloneToken(
  ctx: WorkerContext,
  app: GithubApp | null,
  row: ConnectionRow,
  ended: () => CloneError,
): Promise<string> {
  if (row.auth_method === 'app') return mintCloneToken(ctx, app, row)
  if (row.encrypted_token === null) throw ended()
  return decrypt(ctx.config.keyring, row.encrypted_token)
}

/**
 * Mints the clone token of an App connection: the installation's token down-scoped to the
 * connection's repository and to contents:read + metadata:read, never stored (a fresh one per
 * job; `refresh` skips auth-app's cache after GitHub refused the previous one). GitHub answers
 * 404 when the installation is gone, 422 when the repository is no longer in it, 403 when it is
 * suspended: all mean {@link APP_ACCESS_REVOKED} (permanent).
 * @throws {CloneError}
 */
async function mintCloneToken(
  ctx: WorkerContext,
  app: GithubApp | null,
  row: ConnectionRow,
  refresh = false,
): Promise<string> {
  if (!app) {
    throw new CloneError(
      'auth',
      'This connection uses the GitHub App, which is not configured on this worker (GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_APP_PRIVATE_KEY).',
      undefined,
      'GITHUB_APP_NOT_CONFIGURED',
    )
  }
  if (row.installation_id === null || row.github_repo_id === null) {
    throw new CloneError('auth', APP_ACCESS_REVOKED_MESSAGE, undefined, APP_ACCESS_REVOKED)
  }
  try {
    const { token } = await app.installationToken({
      installationId: Number(row.installation_id),
      repositoryIds: [Number(row.github_repo_id)],
      permissions: { ...APP_CLONE_PERMISSIONS },
      refresh,
    })
    return token
  } catch (err) {
    const status = githubErrorStatus(err)
    const refusal = classifyGithubError(err)
    if (status === 404 || status === 422 || (status === 403 && refusal.kind === 'forbidden')) {
      throw new CloneError('auth', APP_ACCESS_REVOKED_MESSAGE, undefined, APP_ACCESS_REVOKED)
    }
    const appError = githubErrorToAppError(err)
    if (refusal.kind === 'rate_limited' || refusal.kind === 'unavailable') {
      throw new CloneError('network', appError.message, undefined, appError.code)
    }
    if (status === 401) {
      // GitHub refused the App's JWT: a wrong GITHUB_APP_ID or private key.
      ctx.logger.error(
        { connectionId: row.id },
        'GitHub refused the GitHub App JWT; check GITHUB_APP_ID and the key',
      )
      throw new CloneError(
        'auth',
        'GitHub refused Portico’s GitHub App credentials. An operator must check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY.',
        undefined,
        'GITHUB_APP_AUTH_FAILED',
      )
    }
    throw new CloneError('auth', appError.message, undefined, appError.code)
  }
}

async function runClone(
  ctx: WorkerContext,
  app: GithubApp | null,
  job: Job<CloneJobData>,
  shutdown?: AbortSignal,
): Promise<CloneOutcome> {
  const { connectionId } = job.data
  if (typeof connectionId !== 'string' || !isUuid(connectionId)) {
    throw new UnrecoverableError('clone job without a valid connection id')
  }
  if (job.data.refresh === true) return await runRefresh(ctx, app, job, shutdown)
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
    error_code: null,
  })
  if (!started) return { outcome: 'skipped', reason: 'connection changed before the clone started' }
  await job.updateProgress(0)

  let token: string | undefined
  const cancel = new AbortController()
  // Shutdown kills git (its whole process group) through the same controller.
  const onShutdown = () => cancel.abort()
  shutdown?.addEventListener('abort', onShutdown, { once: true })
  if (shutdown?.aborted) cancel.abort()
  const ticker = progressTicker(ctx, job, row.id, cancel)
  try {
    const viaApp = row.auth_method === 'app'
    token = await cloneToken(
      ctx,
      app,
      row,
      () =>
        new CloneError(
          'auth',
          'The connection has no stored token (it ended). Connect the repository again.',
        ),
    )
    const cloneStarted = performance.now()
    const cloneOnce = async (t: string) =>
      cloneRepository({
        url: await currentCloneUrl(ctx, row, t),
        token: t,
        dest,
        timeoutMs: ctx.config.CLONE_TIMEOUT_SECONDS * 1000,
        maxBytes: ctx.config.CLONE_MAX_MB * 1024 * 1024,
        maxFiles: ctx.config.CLONE_MAX_FILES,
        signal: cancel.signal,
        onProgress: (percent) => ticker.set(Math.floor((percent * CLONE_SHARE) / 100)),
      })
    let commitSha: string
    let bytes: number
    try {
      ;({ commitSha, bytes } = await cloneOnce(token))
    } catch (err) {
      // An installation token GitHub refused (expired, revoked mid-job) or that no longer reaches the
      // repository: mint a fresh one, once (GitHub then says whether access was revoked).
      const refused =
        err instanceof CloneError &&
        (err.kind === 'unauthorized' || err.code === 'INVALID_TOKEN' || err.code === 'REPOSITORY_NOT_FOUND')
      if (!viaApp || !refused) throw err
      log.info('GitHub refused the installation token; minting a new one')
      token = await mintCloneToken(ctx, app, row, true)
      ;({ commitSha, bytes } = await cloneOnce(token))
    }
    await ticker.stop()
    cloneDuration.observe((performance.now() - cloneStarted) / 1000)
    cloneBytes.inc(bytes)
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
    if (shutdown?.aborted) return await handBack(ctx, row.id, dest)
    return await analyze(ctx, job, cloned, dest, commitSha, shutdown)
  } catch (err) {
    await ticker.stop()
    if (err instanceof HandBack) throw err
    if (shutdown?.aborted) return await handBack(ctx, row.id, dest)
    await removeClone(dest)
    // A DELETE removes the directory under git's feet: that failure is a cancellation too.
    const cancelled = err instanceof CloneError && err.kind === 'cancelled'
    if (cancelled || !(await findConnection(ctx.db, row.id))) {
      return { outcome: 'skipped', reason: 'connection deleted during the clone' }
    }
    return await recordFailure(ctx, job, row, err, token)
  }
}

/**
 * The HTTPS clone URL of the connection's repository as it is named now. A repository is known by
 * GitHub's numeric id: `GET /repositories/{id}` gives its current `full_name` after a rename or
 * transfer (recorded on the row), and the clone URL is built from it under `GITHUB_URL`, so git
 * never depends on a redirect (the clone follows none). Rows without an id use the URL as typed.
 * @throws {CloneError} `auth`/`not-found` (permanent) or `network` (retried) by GitHub's answer.
 */
async function currentCloneUrl(
  ctx: WorkerContext,
  row: ConnectionRow,
  token: string,
  statuses: readonly ConnectionStatus[] = ['cloning'],
): Promise<string> {
  return (await currentRepo(ctx, row, token, statuses)).url
}

/**
 * {@link currentCloneUrl} with the repository's default branch as GitHub reports it now (null
 * for rows without a repository id: the stored one is used).
 */
async function currentRepo(
  ctx: WorkerContext,
  row: ConnectionRow,
  token: string,
  statuses: readonly ConnectionStatus[],
): Promise<{ url: string; defaultBranch: string | null }> {
  const asTyped = parseRepoUrl(row.repo_url, ctx.config.GITHUB_URL).cloneUrl
  if (row.github_repo_id === null) return { url: asTyped, defaultBranch: row.default_branch }
  const octokit = createOctokit({ token, baseUrl: ctx.config.GITHUB_API_URL, retries: 0, throttle: false })
  let fullName: unknown
  let defaultBranch: unknown
  try {
    const res = await octokit.request('GET /repositories/{id}', { id: Number(row.github_repo_id) })
    fullName = (res.data as { full_name?: unknown }).full_name
    defaultBranch = (res.data as { default_branch?: unknown }).default_branch
  } catch (err) {
    const refusal = classifyGithubError(err)
    const appError = githubErrorToAppError(err)
    if (refusal.kind === 'unauthorized') throw new CloneError('unauthorized', FAILURE_UNAUTHORIZED)
    if (refusal.kind === 'not_found') throw new CloneError('not-found', FAILURE_NOT_FOUND)
    if (refusal.kind === 'rate_limited' || refusal.kind === 'unavailable') {
      throw new CloneError('network', appError.message, undefined, appError.code)
    }
    // Organisation policies, missing permissions: GitHub's own (redacted) reason, permanent.
    throw new CloneError('auth', appError.message, undefined, appError.code)
  }
  const branch = typeof defaultBranch === 'string' ? defaultBranch : row.default_branch
  if (typeof fullName !== 'string') return { url: asTyped, defaultBranch: branch }
  const base = ctx.config.GITHUB_URL.replace(/\/+$/, '')
  let current: ReturnType<typeof parseRepoUrl>
  try {
    current = parseRepoUrl(`${base}/${fullName}`, ctx.config.GITHUB_URL)
  } catch {
    return { url: asTyped, defaultBranch: branch }
  }
  if (fullName !== row.repo_full_name) {
    await updateConnectionIfStatus(ctx.db, row.id, statuses, {
      repo_full_name: fullName,
      owner: current.owner,
      repo: current.repo,
    })
  }
  return { url: current.cloneUrl, defaultBranch: branch }
}

const FAILURE_UNAUTHORIZED =
  'GitHub rejected the token (401): it has expired or was revoked. Replace the PAT, then refresh the connection.'
const FAILURE_NOT_FOUND = 'The repository was not found, or the token cannot read it.'

async function analyze(
  ctx: WorkerContext,
  job: Job,
  row: ConnectionRow,
  dest: string,
  commitSha: string,
  shutdown?: AbortSignal,
): Promise<CloneOutcome> {
  let result: AnalysisResult
  const analysisStarted = performance.now()
  try {
    // Off the main thread with a wall-clock budget: job locks and the health check keep running.
    result = await analyzeInThread(dest, {
      timeoutMs: ctx.config.ANALYSIS_TIMEOUT_SECONDS * 1000,
      signal: shutdown,
    })
    analysisDuration.observe((performance.now() - analysisStarted) / 1000)
    if (result.summary.truncated) analysisTruncations.inc()
    if (result.summary.timed_out) {
      ctx.logger.warn(
        { connectionId: row.id, filesScanned: result.summary.files_scanned },
        'analysis stopped at ANALYSIS_TIMEOUT_SECONDS; summary is partial',
      )
    }
  } catch (err) {
    if (shutdown?.aborted) return await handBack(ctx, row.id, dest)
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

/** GitHub refused a PAT connection's stored token (401); App tokens are minted per attempt. */
const rejectedPat = (err: unknown, row: ConnectionRow) =>
  err instanceof CloneError && err.kind === 'unauthorized' && row.auth_method === 'pat'

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
  const code = err instanceof CloneError ? err.code : 'CLONE_FAILED'
  if (err instanceof CloneError && err.detail) {
    ctx.logger.warn({ connectionId: row.id, code, detail: safeMessage(err.detail, token) }, 'clone failed')
  }
  // Unknown errors (a database hiccup) are retried; a bad stored URL or key is not.
  const status = (err as { statusCode?: unknown }).statusCode
  const permanent =
    err instanceof CloneError ? err.permanent : typeof status === 'number' && status >= 400 && status < 500
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
  if (permanent || lastAttempt) {
    const end = () => (permanent ? new UnrecoverableError(message) : new Error(message))
    const changes = { error_message: message, error_code: code }
    if (row.auth_method === 'pat') {
      // Written only while the row holds the token this attempt used (GitHub's 401 also marks it
      // "invalid" until the PAT is replaced). A PAT replaced during the clone was not the one
      // that failed: clone again with it, without using an attempt.
      if (await failCloneForToken(ctx.db, row.id, row.encrypted_token, changes, rejectedPat(err, row)))
        throw end()
      const back = await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
        status: 'pending',
        progress: 0,
        clone_path: null,
        error_message: null,
        error_code: null,
      })
      if (back) throw replacedHandBack()
      throw end()
    }
    await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
      status: 'failed',
      progress: 0,
      clone_path: null,
      ...changes,
    })
    throw end()
  }
  await updateConnectionIfStatus(ctx.db, row.id, ['cloning'], {
    status: 'pending',
    progress: 0,
    error_message: safeMessage(`${message} Retrying.`, token),
    error_code: code,
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

/**
 * Refreshes a connection (job data `{ connectionId, refresh: true }`): fetches the default
 * branch's latest commit and re-analyses it while the row keeps showing the previous status,
 * commit and analysis; the result lands in one update ({@link landRefresh}). An existing clone
 * directory is reused with a shallow fetch and the new tree is staged beside it
 * ({@link fetchLatest}); without one (expired, failed, or another host's) the repository is
 * cloned afresh. A failed/expired connection whose token works comes back `analyzed`.
 * Failures leave the connection as it was and set `refresh_status: "failed"` with a code; GitHub's
 * 401 also marks the token invalid (`TOKEN_EXPIRED`).
 */
async function runRefresh(
  ctx: WorkerContext,
  app: GithubApp | null,
  job: Job<CloneJobData>,
  shutdown?: AbortSignal,
): Promise<CloneOutcome> {
  const { connectionId } = job.data
  const found = await findConnection(ctx.db, connectionId)
  if (!found) return { outcome: 'skipped', reason: 'connection deleted' }
  if (!REFRESHABLE_STATUSES.includes(found.status)) {
    return { outcome: 'skipped', reason: `connection is ${found.status}` }
  }
  const row = await markRefreshRunning(ctx.db, connectionId)
  if (!row) return { outcome: 'skipped', reason: 'connection changed before the refresh started' }
  const log = ctx.logger.child({ connectionId, jobId: job.id })
  const dest = clonePath(ctx.config.cloneRoot, row.tenant_id, row.id)
  const cancel = new AbortController()
  const onShutdown = () => cancel.abort()
  shutdown?.addEventListener('abort', onShutdown, { once: true })
  if (shutdown?.aborted) cancel.abort()
  // A DELETE cancels the refresh: the row is looked at once a second.
  const watcher = setInterval(() => {
    findConnection(ctx.db, connectionId)
      .then((r) => {
        if (!r) cancel.abort()
      })
      .catch(() => {})
  }, PROGRESS_TICK_MS)
  let token: string | undefined
  let stage: string | undefined
  let freshClone = false
  try {
    token = await cloneToken(
      ctx,
      app,
      row,
      () =>
        new CloneError(
          'auth',
          'The connection has no stored token (it ended). Refresh it with a PAT, or connect again.',
          undefined,
          'TOKEN_REQUIRED',
        ),
    )
    const { url, defaultBranch } = await currentRepo(ctx, row, token, REFRESHABLE_STATUSES)
    const limits = {
      url,
      token,
      timeoutMs: ctx.config.CLONE_TIMEOUT_SECONDS * 1000,
      maxBytes: ctx.config.CLONE_MAX_MB * 1024 * 1024,
      maxFiles: ctx.config.CLONE_MAX_FILES,
      signal: cancel.signal,
    }
    let commitSha: string
    let analyseDir: string
    if (defaultBranch !== null && (await hasClone(dest))) {
      stage = `${dest}.partial-${randomBytes(6).toString('hex')}`
      ;({ commitSha } = await fetchLatest({
        ...limits,
        repoDir: dest,
        branch: defaultBranch,
        stageDir: stage,
      }))
      analyseDir = stage
    } else {
      freshClone = true
      ;({ commitSha } = await cloneRepository({ ...limits, dest }))
      analyseDir = dest
    }
    log.info({ commitSha, reused: !freshClone }, 'refresh fetched')
    const result = await analyzeInThread(analyseDir, {
      timeoutMs: ctx.config.ANALYSIS_TIMEOUT_SECONDS * 1000,
      signal: cancel.signal,
    }).catch((err: unknown) => {
      if (cancel.signal.aborted) throw new CloneError('cancelled', 'The refresh was cancelled.')
      throw new CloneError(
        'git',
        truncateMessage(`Analysis failed: ${(err as Error).message}`, 500),
        undefined,
        'ANALYSIS_FAILED',
      )
    })
    if (cancel.signal.aborted) throw new CloneError('cancelled', 'The refresh was cancelled.')
    if (stage !== undefined) {
      await promoteStaged(dest, stage, commitSha)
      stage = undefined
    }
    let landed: ConnectionRow | undefined
    try {
      landed = await landRefresh(ctx.db, row.id, {
        commit_sha: commitSha,
        default_branch: defaultBranch,
        clone_path: dest,
        expires_at: new Date(Date.now() + ctx.config.CLONE_TTL_HOURS * 3600_000),
        analysis_summary: JSON.stringify(result.summary),
        routes_count: result.routesCount,
        components_count: result.componentsCount,
        endpoints_count: result.endpointsCount,
      })
    } catch (err) {
      if (!isUniqueViolation(err)) throw err
      throw new CloneError(
        'auth',
        'The project has a newer live connection; this ended one cannot come back.',
        undefined,
        'CONNECTION_EXISTS',
      )
    }
    if (!landed) {
      if (!(await findConnection(ctx.db, row.id))) await removeClone(dest)
      return { outcome: 'skipped', reason: 'connection deleted during the refresh' }
    }
    await job.updateProgress(100)
    log.info({ commitSha }, 'connection refreshed')
    return { outcome: 'analyzed', commitSha }
  } catch (err) {
    if (stage !== undefined) await rm(stage, { recursive: true, force: true }).catch(() => {})
    // A fresh clone replaced nothing: without a landed refresh it must not outlive the attempt.
    const current = await findConnection(ctx.db, row.id)
    if (freshClone && (!current || current.refresh_status === 'running')) await removeClone(dest)
    if (shutdown?.aborted) {
      await requeueRefresh(ctx.db, row.id)
      throw shutdownHandBack()
    }
    if (!current || (err instanceof CloneError && err.kind === 'cancelled')) {
      return { outcome: 'skipped', reason: 'connection deleted during the refresh' }
    }
    const message = safeMessage(failureMessage(ctx, err), token)
    // Our own refusals (an App not configured on this worker…) are AppErrors; a 4xx is permanent.
    const code = err instanceof CloneError ? err.code : isAppError(err) ? err.code : 'CLONE_FAILED'
    if (err instanceof CloneError && err.detail) {
      log.warn({ code, detail: safeMessage(err.detail, token) }, 'refresh failed')
    }
    const permanent =
      (err instanceof CloneError && err.permanent) || (isAppError(err) && err.statusCode < 500)
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
    const retrying = !permanent && !lastAttempt
    const pat = row.auth_method === 'pat'
    const failed = await failRefresh(ctx.db, row.id, {
      code,
      message: retrying ? safeMessage(`${message} Retrying.`, token) : message,
      retrying,
      // Applies only while the row holds the token this refresh used: a PAT replaced during the
      // refresh was not the one that failed, and the refresh runs again with it.
      usedToken: pat ? row.encrypted_token : null,
      tokenRejected: rejectedPat(err, row),
    })
    if (!failed && pat && (await requeueRefresh(ctx.db, row.id))) throw replacedHandBack()
    if (permanent) throw new UnrecoverableError(message)
    throw new Error(message)
  } finally {
    clearInterval(watcher)
    shutdown?.removeEventListener('abort', onShutdown)
  }
}
