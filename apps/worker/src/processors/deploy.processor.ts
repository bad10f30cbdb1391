import {
  AppError,
  createOctokit,
  decrypt,
  GithubApp,
  githubErrorStatus,
  githubErrorToAppError,
  isAppError,
  redactSecrets,
  ServiceActor,
  truncateMessage,
} from '@portico/core'
import { completeDeployment, failDeployment, startDeployment, updateDeployment } from '@portico/db'
import { rateLimitResetAt } from '@portico/pods'
import { DelayedError, UnrecoverableError } from 'bullmq'
import type { ProcessorFactory } from '../context.js'
import { deployBranch, openDeployPullRequest } from '../deploy/open-pull-request.js'
import { PacingDelay, WritePacer } from '../deploy/write-pacer.js'

/**
 * An error Octokit's request layer threw (`RequestError`, name `HttpError`): a GitHub answer, or
 * a network failure Octokit reports as status 500. Anything else is not GitHub's.
 */
export function isOctokitRequestError(err: unknown): boolean {
  const e = err as (Error & { status?: unknown; request?: unknown }) | null
  return (
    e instanceof Error &&
    e.name === 'HttpError' &&
    typeof e.status === 'number' &&
    typeof e.request === 'object'
  )
}

/** PostgreSQL and connection-level database errors, as node-postgres and Kysely raise them. */
function isDatabaseError(err: unknown): boolean {
  const e = err as (Error & { code?: unknown; severity?: unknown }) | null
  if (!(e instanceof Error)) return false
  if (typeof e.severity === 'string' && typeof e.code === 'string') return true // a server error
  return /ECONNREFUSED|ECONNRESET|Connection terminated|timeout exceeded when trying to connect|the database system is/i.test(
    `${String(e.code ?? '')} ${e.message}`,
  )
}

/** A failure of Portico's own (not GitHub's): the database, or a bug. The cause stays attached for the logs. */
function internalError(err: unknown): AppError {
  if (isDatabaseError(err)) {
    return new AppError(503, 'DATABASE_ERROR', 'A database error interrupted the deploy.', {
      cause: err,
      expose: true,
    })
  }
  return new AppError(500, 'DEPLOY_FAILED', 'The deploy failed unexpectedly.', { cause: err, expose: true })
}

/** GitHub answers that retrying cannot fix. */
const PERMANENT_GITHUB_STATUSES = new Set([401, 403, 404, 409, 422])

/**
 * Opens the pull request for one deployment row, acting with the requester's token (stored
 * encrypted on the row) or the service actor (the GitHub App's installation, else GH_TOKEN) for
 * service requests. The token is wiped when the job ends.
 * Rate limits delay the job instead of failing it; permanent failures (validation, GitHub
 * 401/403/404/422) end it at once; transient ones are retried by BullMQ, and the last attempt
 * records the failure on the row.
 */
export const deployProcessor: ProcessorFactory<'deploy'> = (ctx) => {
  const { config, db, logger } = ctx
  const pacer = new WritePacer(ctx.redis, config.REDIS_PREFIX, config.GITHUB_WRITE_SPACING_MS)
  const [owner = '', repo = ''] = (config.GH_REPO ?? '').split('/')
  // Service requests act as the GitHub App's installation on GH_REPO's owner when an App is configured.
  const service = new ServiceActor(
    config,
    config.githubApp
      ? new GithubApp(config.githubApp, { apiUrl: config.GITHUB_API_URL, githubUrl: config.GITHUB_URL })
      : null,
  )

  return async (job) => {
    const { deploymentId } = job.data
    const row = await startDeployment(db, deploymentId)
    if (!row) return { skipped: true } // gone, or finished by an earlier delivery

    const fail = async (err: AppError) => {
      await failDeployment(db, row.id, {
        code: err.code,
        status: err.statusCode,
        message: truncateMessage(redactSecrets(err.message), 500),
      })
    }

    let token: string | undefined
    try {
      if (!config.GH_REPO) throw new AppError(503, 'PODS_NOT_CONFIGURED', 'GH_REPO is not set')
      if (row.token_source === 'user') {
        if (!row.encrypted_token)
          throw new AppError(401, 'TOKEN_UNAVAILABLE', 'The requester’s token is gone')
        token = decrypt(config.keyring, row.encrypted_token)
      } else {
        try {
          token = (await service.get())?.token
        } catch (err) {
          throw githubErrorToAppError(err)
        }
        if (!token)
          throw new AppError(
            503,
            'GITHUB_NOT_CONFIGURED',
            service.kind === 'app'
              ? `The GitHub App is not installed on ${owner}`
              : 'Neither GH_TOKEN nor a GitHub App is configured',
          )
      }
      const branch = row.branch ?? deployBranch(row.customer, row.env, row.id)
      if (!row.branch) await updateDeployment(db, row.id, { branch })
      // No in-process retries or rate-limit waits: BullMQ owns retries and delays.
      const octokit = createOctokit({ token, baseUrl: config.GITHUB_API_URL, retries: 0, throttle: false })
      const result = await openDeployPullRequest(
        octokit,
        pacer,
        token,
        { owner, repo, base: config.WORKFLOW_BRANCH, specsPath: config.SPECS_PATH },
        {
          customer: row.customer,
          env: row.env,
          instance_name: row.instance_name,
          waf_enabled: row.waf_enabled,
          branch,
          commitMessage: row.commit_message ?? `Deploy ${row.customer}/${row.env}`,
        },
      )
      await completeDeployment(db, row.id, result)
      return result
    } catch (err) {
      const resetAt = err instanceof PacingDelay ? err.untilMs : rateLimitResetAt(err)
      if (resetAt !== undefined && token !== undefined) {
        await pacer.pushBack(token, resetAt)
        logger.info(
          { jobId: job.id, until: new Date(resetAt).toISOString() },
          'deploy delayed by GitHub rate limit',
        )
        await job.moveToDelayed(Math.max(resetAt, Date.now() + 100), job.token)
        throw new DelayedError()
      }
      const github = isOctokitRequestError(err)
      const status = github ? githubErrorStatus(err) : undefined
      // Only GitHub's answers become GitHub codes; our own failures (a database that went away)
      // are reported as what they are.
      const appError = github
        ? githubErrorToAppError(err, {
            notFound: () =>
              new AppError(
                404,
                'SPECS_REPO_NOT_FOUND',
                `${config.GH_REPO} or its branch ${config.WORKFLOW_BRANCH} was not found or is not writable with this GitHub account`,
              ),
          })
        : isAppError(err)
          ? err
          : internalError(err)
      const permanent =
        (isAppError(err) && err.statusCode < 500) ||
        (status !== undefined && PERMANENT_GITHUB_STATUSES.has(status))
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      logger.warn(
        { jobId: job.id, deploymentId, attempt: job.attemptsMade + 1, code: appError.code, err: appError },
        'deploy attempt failed',
      )
      if (permanent || lastAttempt) {
        // With the database gone this fails too; the maintenance repair settles the row later.
        await fail(appError).catch((failErr: unknown) =>
          logger.error({ deploymentId, err: failErr }, 'could not record the failed deployment'),
        )
      }
      if (permanent) throw new UnrecoverableError(appError.message)
      throw appError
    }
  }
}
