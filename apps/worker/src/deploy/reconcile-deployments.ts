import { classifyGithubError, githubAnswerOf, type Octokit } from '@portico/core'
import {
  clearMissingCounts,
  type DeploymentEtags,
  listDeploymentsToReconcile,
  recordReconciliation,
} from '@portico/db'
import type { WorkerContext } from '../context.js'
import {
  applyPullState,
  type CheckRunLike,
  type CommitStatusLike,
  markPullRequestLost,
  type PullState,
  settleFromChecks,
  specsRepository,
} from './follow-pull-request.js'

/** What one reconciliation pass did. */
export interface ReconcileResult {
  /** Deployments looked at. */
  checked: number
  /** Deployments whose stage or checks changed. */
  changed: number
  /** GitHub reads answered 304 Not Modified (free: not counted against the rate limit). */
  notModified: number
  /** Deployments skipped after an error (logged); a rate limit ends the pass early. */
  errors: number
  skipped?: string
}

type Conditional<T> = { notModified: true } | { notModified: false; data: T; etag: string | undefined }

/**
 * A GET with `If-None-Match: etag` when there is one. GitHub answers 304 (which Octokit throws)
 * for an unchanged resource and does not count it against the rate limit
 * (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate).
 */
async function conditionalGet<T>(
  octokit: Octokit,
  route: string,
  params: Record<string, unknown>,
  etag: string | undefined,
): Promise<Conditional<T>> {
  try {
    const res = await octokit.request(route, {
      ...params,
      ...(etag ? { headers: { 'if-none-match': etag } } : {}),
    })
    return { notModified: false, data: res.data as T, etag: res.headers.etag }
  } catch (err) {
    if ((err as { status?: unknown }).status === 304) return { notModified: true }
    throw err
  }
}

/**
 * The webhook-free path to the same states: every deployment whose pull request is open, or
 * merged within APPLY_TIMEOUT_HOURS, is looked at with conditional requests (ETags stored on the
 * row), so an unchanged pull request or check list costs no counted GitHub call. A pull request
 * that is gone (404 on {@link PULL_MISSING_PASSES} passes in a row over at least
 * {@link MISSING_AT_LEAST_MS}, while the repository reads) or
 * now another branch's ends its deployment `PULL_REQUEST_LOST`, once; other
 * errors are retried on the next pass. Acts as the service actor (GH_TOKEN); without
 * GH_REPO/GH_TOKEN it does nothing.
 */
/**
 * Passes in a row a pull request must answer 404 before its deployment is ended as lost, and a
 * merge commit must be unknown to GitHub before it is no longer followed...
 */
export const PULL_MISSING_PASSES = 3
/**
 * ...and for how long at least (ms) since the first of them: with a short
 * RECONCILE_INTERVAL_SECONDS (10 s at the least) three passes alone could be a 20-second blip.
 */
export const MISSING_AT_LEAST_MS = 10 * 60_000

/** Counts one more pass that found `what` missing; whether it has been missing long enough now. */
function missingLongEnough(etags: DeploymentEtags, what: 'pull_missing' | 'commit_missing', now: Date) {
  const other = what === 'pull_missing' ? 'commit_missing' : 'pull_missing'
  // A new run starts its own clock: a pull request's 404 before the merge (a webhook moved the
  // deployment on since) says nothing about how long its merge commit has been unknown.
  if (etags[what] === undefined || etags[other] !== undefined || etags.missing_since === undefined) {
    delete etags[other]
    etags.missing_since = now.getTime()
  }
  etags[what] = (etags[what] ?? 0) + 1
  return etags[what] >= PULL_MISSING_PASSES && now.getTime() - etags.missing_since >= MISSING_AT_LEAST_MS
}
/** Drops the counts of a run of misses that has ended (an answer came). */
function notMissing(etags: DeploymentEtags) {
  delete etags.pull_missing
  delete etags.commit_missing
  delete etags.missing_since
}

/**
 * GitHub's answer for a commit it does not have (422 "No commit found for SHA: …" on a commit's
 * check runs and status): the merge commit was rewritten out of the repository's history.
 */
const isUnknownCommit = (err: unknown) => {
  const answer = githubAnswerOf(err)
  return answer.status === 422 && /^No commit found for SHA\b/i.test(answer.message)
}

export async function reconcileDeployments(ctx: WorkerContext, now = new Date()): Promise<ReconcileResult> {
  const result: ReconcileResult = { checked: 0, changed: 0, notModified: 0, errors: 0 }
  if (!ctx.config.GH_REPO || !ctx.config.GH_TOKEN)
    return { ...result, skipped: 'GH_REPO or GH_TOKEN not set' }
  const { owner, repo, octokit } = specsRepository(ctx)
  const mergedSince = new Date(now.getTime() - ctx.config.APPLY_TIMEOUT_HOURS * 3600_000)
  // GitHub answers 404 for a repository the token cannot see, too: a pull request is gone only
  // when the repository itself reads (at most one read per pass, and only after a 404).
  let readable: Promise<boolean> | undefined
  const specsReadable = () => {
    readable ??= octokit.request('GET /repos/{owner}/{repo}', { owner, repo }).then(
      () => true,
      () => false,
    )
    return readable
  }
  for (const row of await listDeploymentsToReconcile(ctx.db, mergedSince)) {
    result.checked += 1
    const etags: DeploymentEtags = { ...(row.github_etags ?? {}) }
    // GitHub answered about the pull request or the merge commit this pass (a 200 or 304).
    let answered = false
    try {
      if (row.stage === 'pr_open') {
        const pull = await conditionalGet<PullState>(
          octokit,
          'GET /repos/{owner}/{repo}/pulls/{pull_number}',
          { owner, repo, pull_number: row.pr_number },
          etags.pull,
        ).catch(async (err: unknown) => {
          if (classifyGithubError(err).kind === 'not_found' && (await specsReadable())) return 'gone' as const
          throw err
        })
        if (pull === 'gone') {
          // One 404 can be GitHub's own lag or a blip: only one that lasts PULL_MISSING_PASSES
          // passes in a row and MISSING_AT_LEAST_MS ends the deployment.
          if (!missingLongEnough(etags, 'pull_missing', now)) {
            result.errors += 1
            ctx.logger.warn(
              { deploymentId: row.id, prNumber: row.pr_number, passes: etags.pull_missing },
              'deploy pull request not found; it is ended if this lasts',
            )
          } else {
            const lost = await markPullRequestLost(
              ctx,
              row,
              `Pull request #${row.pr_number} was not found in ${ctx.config.GH_REPO}`,
            )
            if (lost) result.changed += 1
          }
        } else if (pull.notModified) {
          answered = true
          result.notModified += 1
          notMissing(etags)
        } else {
          answered = true
          notMissing(etags)
          if (pull.etag) etags.pull = pull.etag
          if (await applyPullState(ctx, row, pull.data)) result.changed += 1
        }
      } else if (row.stage === 'merged' && row.merge_commit_sha) {
        const params = { owner, repo, ref: row.merge_commit_sha, per_page: 100 }
        const route = {
          runs: 'GET /repos/{owner}/{repo}/commits/{ref}/check-runs',
          status: 'GET /repos/{owner}/{repo}/commits/{ref}/status',
        }
        const read = await conditionalGet<{ check_runs: CheckRunLike[] }>(
          octokit,
          route.runs,
          params,
          etags.check_runs,
        ).catch(async (err: unknown) => {
          if (isUnknownCommit(err) && (await specsReadable())) return 'unknown' as const
          throw err
        })
        if (read === 'unknown') {
          // No checks can ever come for a commit GitHub does not have; one answer could be a
          // replica's lag, so only PULL_MISSING_PASSES in a row over MISSING_AT_LEAST_MS stop
          // the following. The deployment stays `merged`, as one whose checks never came within
          // APPLY_TIMEOUT_HOURS.
          const lost = missingLongEnough(etags, 'commit_missing', now)
          if (lost) etags.commit_lost = true
          else result.errors += 1
          ctx.logger.warn(
            { deploymentId: row.id, sha: row.merge_commit_sha, passes: etags.commit_missing },
            lost
              ? 'deploy merge commit not found in the repository; it stays merged and is no longer followed'
              : 'deploy merge commit not found; it is no longer followed if this lasts',
          )
          await recordReconciliation(ctx.db, row.id, etags)
          continue
        }
        answered = true
        notMissing(etags)
        let runs = read
        let status = await conditionalGet<{ statuses: CommitStatusLike[] }>(
          octokit,
          route.status,
          params,
          etags.status,
        )
        result.notModified += (runs.notModified ? 1 : 0) + (status.notModified ? 1 : 0)
        if (!runs.notModified || !status.notModified) {
          // One changed: the unchanged one is read again in full (rare, and counted).
          if (runs.notModified) runs = await conditionalGet(octokit, route.runs, params, undefined)
          if (status.notModified) status = await conditionalGet(octokit, route.status, params, undefined)
          if (!runs.notModified && !status.notModified) {
            if (runs.etag) etags.check_runs = runs.etag
            if (status.etag) etags.status = status.etag
            const settled = await settleFromChecks(ctx, row, {
              runs: runs.data.check_runs,
              statuses: status.data.statuses,
            })
            if (settled) result.changed += 1
          }
        }
      }
      await recordReconciliation(ctx.db, row.id, etags)
    } catch (err) {
      result.errors += 1
      const refusal = classifyGithubError(err)
      ctx.logger.warn(
        { deploymentId: row.id, kind: refusal.kind, status: refusal.status },
        'reconciling a deployment failed',
      )
      // Another answer about the pull request or commit (a 5xx; or a 200 or 304 before a later
      // read or the change's write failed) breaks a run of 404s or unknown commits: only
      // PULL_MISSING_PASSES in a row count. No answer says nothing either way: a rate limit, a
      // 404 or 422 while the repository does not read, or no answer from GitHub at all (a
      // network failure, or a database error writing this pass's count). Only the count is
      // dropped: the ETags this pass read stay unstored, so the change is read again next pass.
      const counted = row.github_etags?.pull_missing || row.github_etags?.commit_missing
      const unanswered =
        !githubAnswerOf(err).answered ||
        refusal.kind === 'rate_limited' ||
        refusal.kind === 'not_found' ||
        isUnknownCommit(err)
      if (counted && (answered || !unanswered))
        await clearMissingCounts(ctx.db, row.id).catch(() => undefined)
      // Out of quota: the rest would fail the same way; the next pass resumes (oldest first).
      if (refusal.kind === 'rate_limited') break
    }
  }
  return result
}
