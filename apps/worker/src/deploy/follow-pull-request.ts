import { AppError, createOctokit, type Octokit } from '@portico/core'
import {
  type DeploymentCheck,
  type DeploymentRow,
  markDeploymentClosed,
  markDeploymentMerged,
  recordDeploymentChecks,
  updateDeployment,
} from '@portico/db'
import type { WorkerContext } from '../context.js'

// A deploy's pull request followed past "opened": merged or closed, then the specs repository's
// checks on the merge commit decide applied / apply_failed. Shared by the webhook handlers and
// the reconciler, so both reach the same states through the same conditional updates.

/**
 * Check-run conclusions that count as a failure (https://docs.github.com/en/rest/checks/runs);
 * `success`, `neutral` and `skipped` pass.
 */
const FAILED_CONCLUSIONS = new Set([
  'failure',
  'timed_out',
  'cancelled',
  'action_required',
  'startup_failure',
  'stale',
])
/** Commit-status states that count as a failure (https://docs.github.com/en/rest/commits/statuses). */
const FAILED_STATES = new Set(['failure', 'error'])

/** The fields of a check run Portico reads. */
export interface CheckRunLike {
  name: string
  status: string
  conclusion: string | null
  details_url?: string | null
  html_url?: string | null
}
/** The fields of a commit status Portico reads. */
export interface CommitStatusLike {
  context: string
  state: string
  target_url?: string | null
}

/** What the checks of one commit say. `none`: no check at all yet; `pending`: some not completed. */
export type ChecksVerdict = 'none' | 'pending' | 'applied' | 'apply_failed'

/**
 * Combines a commit's check runs (latest per name, as GitHub lists them) and commit statuses
 * (latest per context) into one list and a verdict: `applied` when every one completed and
 * passed, `apply_failed` when every one completed and any failed.
 */
export function evaluateChecks(
  runs: readonly CheckRunLike[],
  statuses: readonly CommitStatusLike[],
): { verdict: ChecksVerdict; checks: DeploymentCheck[] } {
  const checks: DeploymentCheck[] = []
  let pending = false
  let failed = false
  for (const run of runs) {
    const done = run.status === 'completed'
    if (!done) pending = true
    else if (run.conclusion !== null && FAILED_CONCLUSIONS.has(run.conclusion)) failed = true
    checks.push({
      name: run.name,
      conclusion: done ? (run.conclusion ?? 'neutral') : null,
      url: run.details_url || run.html_url || null,
    })
  }
  const seen = new Set<string>()
  for (const status of statuses) {
    if (seen.has(status.context)) continue // GitHub lists the newest first
    seen.add(status.context)
    const done = status.state !== 'pending'
    if (!done) pending = true
    else if (FAILED_STATES.has(status.state)) failed = true
    checks.push({
      name: status.context,
      conclusion: done ? status.state : null,
      url: status.target_url ?? null,
    })
  }
  const verdict: ChecksVerdict =
    checks.length === 0 ? 'none' : pending ? 'pending' : failed ? 'apply_failed' : 'applied'
  return { verdict, checks }
}

/** The specs repository (GH_REPO) as owner and repo; 503 GITHUB_NOT_CONFIGURED without it or GH_TOKEN. */
export function specsRepository(ctx: WorkerContext): { owner: string; repo: string; octokit: Octokit } {
  const { GH_REPO, GH_TOKEN, GITHUB_API_URL } = ctx.config
  if (!GH_REPO) throw new AppError(503, 'PODS_NOT_CONFIGURED', 'GH_REPO is not set')
  if (!GH_TOKEN) throw new AppError(503, 'GITHUB_NOT_CONFIGURED', 'GH_TOKEN is not set')
  const [owner = '', repo = ''] = GH_REPO.split('/')
  // The service actor; BullMQ owns retries (no in-process retries or rate-limit waits).
  const octokit = createOctokit({ token: GH_TOKEN, baseUrl: GITHUB_API_URL, retries: 0, throttle: false })
  return { owner, repo, octokit }
}

/** Whether `fullName` (a payload's `repository.full_name`) is the specs repository. */
export function isSpecsRepository(ctx: WorkerContext, fullName: unknown): boolean {
  return (
    typeof fullName === 'string' &&
    ctx.config.GH_REPO !== undefined &&
    fullName.toLowerCase() === ctx.config.GH_REPO.toLowerCase()
  )
}

/** The parts of a pull request (REST or webhook payload) that settle a deployment's stage. */
export interface PullState {
  state: string
  merged?: boolean | null
  merged_at?: string | null
  merge_commit_sha?: string | null
  head?: { ref?: unknown } | null
}

/** Stable code of a deployment whose pull request is gone, or now is another branch's. */
export const PULL_REQUEST_LOST = 'PULL_REQUEST_LOST'

/**
 * Whether `pull` is `row`'s pull request: its head branch is the deployment's, compared exactly
 * as the webhook path finds a deployment (`findDeploymentByPull`: pull request number and branch).
 */
export function pullBelongsTo(row: Pick<DeploymentRow, 'branch'>, pull: PullState): boolean {
  const ref = pull.head?.ref
  return typeof ref === 'string' && row.branch !== null && ref === row.branch
}

/**
 * Ends a `pr_open` deployment whose pull request Portico can no longer follow (gone, or its
 * number now another branch's: a reset simulator, a changed GH_REPO): stage `closed`, status
 * `failed` with `PULL_REQUEST_LOST` (404) and a message (`why`, then what it means), so the API reports why. Only a `pr_open`
 * row changes, so it ends once; returns whether it did.
 */
export async function markPullRequestLost(
  ctx: WorkerContext,
  row: DeploymentRow,
  why: string,
): Promise<boolean> {
  const message = `${why}: it no longer belongs to this deployment (the repository was reset or GH_REPO changed). Portico stopped following it.`
  const ended = await ctx.db.transaction().execute(async (trx) => {
    if (!(await markDeploymentClosed(trx, row.id))) return false
    await updateDeployment(trx, row.id, {
      status: 'failed',
      error_code: PULL_REQUEST_LOST,
      error_status: 404,
      error_message: message.slice(0, 500),
    })
    return true
  })
  if (ended)
    ctx.logger.warn(
      { deploymentId: row.id, prNumber: row.pr_number, code: PULL_REQUEST_LOST },
      'deploy pull request lost',
    )
  return ended
}

/**
 * Applies a pull request's state to its deployment: closed and merged → `merged` (then the merge
 * commit's checks are evaluated at once, in case they finished first); closed unmerged →
 * `closed`; another branch's pull request (same number) → lost ({@link markPullRequestLost}),
 * never its state. Returns what changed, or null when nothing did (already there: idempotent).
 */
export async function applyPullState(
  ctx: WorkerContext,
  row: DeploymentRow,
  pull: PullState,
): Promise<string | null> {
  if (!pullBelongsTo(row, pull)) {
    const ref = typeof pull.head?.ref === 'string' ? pull.head.ref.slice(0, 120) : 'unknown'
    const lost = await markPullRequestLost(
      ctx,
      row,
      `Pull request #${row.pr_number} of ${ctx.config.GH_REPO} is now branch ${ref}'s, not ${row.branch}'s`,
    )
    return lost ? 'lost' : null
  }
  if (pull.state !== 'closed') return null
  const merged = Boolean(pull.merged || pull.merged_at)
  if (merged && pull.merge_commit_sha && /^[0-9a-f]{40}$/.test(pull.merge_commit_sha)) {
    const updated = await markDeploymentMerged(ctx.db, row.id, {
      merged_at: pull.merged_at ?? new Date(),
      merge_commit_sha: pull.merge_commit_sha,
    })
    if (!updated) return null
    ctx.logger.info({ deploymentId: row.id, sha: pull.merge_commit_sha }, 'deploy pull request merged')
    const settled = await settleFromChecks(ctx, updated)
    return settled ? `merged, then ${settled}` : 'merged'
  }
  if (merged) return null // merged without a merge commit yet: the next look settles it
  const closed = await markDeploymentClosed(ctx.db, row.id)
  if (closed) ctx.logger.info({ deploymentId: row.id }, 'deploy pull request closed without merging')
  return closed ? 'closed' : null
}

/** Every check run and commit status of `sha` in the specs repository (unconditional reads). */
export async function fetchCommitChecks(
  ctx: WorkerContext,
  sha: string,
): Promise<{ runs: CheckRunLike[]; statuses: CommitStatusLike[] }> {
  const { owner, repo, octokit } = specsRepository(ctx)
  const runs = await octokit.request('GET /repos/{owner}/{repo}/commits/{ref}/check-runs', {
    owner,
    repo,
    ref: sha,
    per_page: 100,
  })
  const status = await octokit.request('GET /repos/{owner}/{repo}/commits/{ref}/status', {
    owner,
    repo,
    ref: sha,
    per_page: 100,
  })
  return {
    runs: runs.data.check_runs as CheckRunLike[],
    statuses: status.data.statuses as CommitStatusLike[],
  }
}

/**
 * Records the checks of a merged deployment's merge commit and, once every one completed,
 * settles it `applied` or `apply_failed`. With no checks (or some still running) it stays
 * `merged`. `known` skips the GitHub reads (the reconciler already has them). Returns the new
 * stage, or null when it did not settle.
 */
export async function settleFromChecks(
  ctx: WorkerContext,
  row: DeploymentRow,
  known?: { runs: CheckRunLike[]; statuses: CommitStatusLike[] },
): Promise<'applied' | 'apply_failed' | null> {
  if (row.stage !== 'merged' || !row.merge_commit_sha) return null
  const { runs, statuses } = known ?? (await fetchCommitChecks(ctx, row.merge_commit_sha))
  const { verdict, checks } = evaluateChecks(runs, statuses)
  if (verdict === 'none') return null
  const outcome = verdict === 'applied' || verdict === 'apply_failed' ? verdict : undefined
  const same = JSON.stringify(row.checks ?? []) === JSON.stringify(checks)
  if (!outcome && same) return null
  const updated = await recordDeploymentChecks(ctx.db, row.id, checks, outcome)
  if (updated && outcome) {
    const failed = checks.find(
      (c) => c.conclusion !== null && !['success', 'neutral', 'skipped'].includes(c.conclusion),
    )
    ctx.logger.info(
      { deploymentId: row.id, stage: outcome, ...(failed ? { failedCheck: failed.name } : {}) },
      'deploy apply settled by checks',
    )
  }
  return updated && outcome ? outcome : null
}
