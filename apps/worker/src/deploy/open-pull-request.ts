import type { Octokit } from '@portico/core'
import { AppError, githubErrorStatus } from '@portico/core'
import { githubMessage, rateLimitResetAt, renderSpec, SPEC_MAX_BYTES, type SpecFields } from '@portico/pods'
import { PacingDelay, type WritePacer } from './write-pacer.js'

/** The specs repository and the branch deploy pull requests target. */
export interface DeployTarget {
  owner: string
  repo: string
  base: string
  specsPath: string
}

/** One deploy: the spec fields, its branch and commit message. */
export interface DeployPlan extends SpecFields {
  branch: string
  commitMessage: string
}

/** The pull request a deploy opened (or found already open). */
export interface DeployResult {
  branch: string
  pr_url: string
  pr_number: number
}

/**
 * Branch of a deployment: `deploy-{customer}-{env}-{deploymentId}`. Stable across retries, and
 * unique per deployment even when two pods' names join to the same string (issue 10, item 9).
 */
export function deployBranch(customer: string, env: string, deploymentId: string): string {
  return `deploy-${customer}-${env}-${deploymentId}`
}

const STALE_SHA_RETRIES = 3

/**
 * Opens the deploy pull request: branch from `base`, create or update the spec on it (only the
 * owned fields change in an existing file), pull request into `base`. At most 2 reads and 3
 * writes; writes go through `pacer`. Idempotent: an existing branch is reused, an unchanged
 * file is not rewritten, an open pull request for the branch is returned, a stale file sha is
 * re-read and retried.
 */
export async function openDeployPullRequest(
  octokit: Octokit,
  pacer: WritePacer,
  token: string,
  target: DeployTarget,
  plan: DeployPlan,
): Promise<DeployResult> {
  const { owner, repo, base } = target
  const { branch, customer, env } = plan
  const where = `${customer}/${env}`
  const path = `${target.specsPath}/${customer}/${env}/spec.yml`
  const write = <T>(fn: () => Promise<T>) => pacer.write(token, fn)

  const baseRef = await octokit.rest.git.getRef({ owner, repo, ref: `heads/${base}` })
  try {
    await write(() =>
      octokit.rest.git.createRef({ owner, repo, ref: `refs/heads/${branch}`, sha: baseRef.data.object.sha }),
    )
  } catch (err) {
    // A retry after a crash: the branch is ours from the earlier attempt (its name holds our id).
    if (!(githubErrorStatus(err) === 422 && /already exists/i.test(githubMessage(err)))) throw err
  }

  try {
    return await commitAndOpen(octokit, write, target, plan, path, where)
  } catch (err) {
    if (leavesNoPullRequest(err)) {
      // No pull request uses the branch: remove it, so failed deploys leave no branches behind.
      // Best effort: the failure being reported is the original one.
      await write(() => octokit.rest.git.deleteRef({ owner, repo, ref: `heads/${branch}` })).catch(() => {})
    }
    throw err
  }
}

/**
 * Whether a failure after the branch was created certainly left no pull request: not a rate
 * limit or pacing delay (the job is delayed and resumes with the branch), and not a network
 * failure or 5xx (the pull request may have been created after all).
 */
function leavesNoPullRequest(err: unknown): boolean {
  if (err instanceof PacingDelay || rateLimitResetAt(err) !== undefined) return false
  const status = githubErrorStatus(err)
  if (err instanceof AppError) return true
  return status !== undefined && status >= 400 && status < 500
}

async function commitAndOpen(
  octokit: Octokit,
  write: <T>(fn: () => Promise<T>) => Promise<T>,
  target: DeployTarget,
  plan: DeployPlan,
  path: string,
  where: string,
): Promise<DeployResult> {
  const { owner, repo, base } = target
  const { branch } = plan
  for (let attempt = 0; ; attempt++) {
    const existing = await readFile(octokit, target, path, branch)
    const text = renderSpec(existing?.text ?? null, plan, where)
    if (existing?.text === text) break
    try {
      await write(() =>
        octokit.rest.repos.createOrUpdateFileContents({
          owner,
          repo,
          path,
          branch,
          message: plan.commitMessage,
          content: Buffer.from(text, 'utf8').toString('base64'),
          ...(existing ? { sha: existing.sha } : {}),
        }),
      )
      break
    } catch (err) {
      // The file changed under us (409), or appeared since we read it (422 "sha" wasn't supplied).
      const stale =
        githubErrorStatus(err) === 409 ||
        (githubErrorStatus(err) === 422 && /\bsha\b/.test(githubMessage(err)))
      if (!stale || attempt >= STALE_SHA_RETRIES) throw err
    }
  }

  try {
    const pr = await write(() =>
      octokit.rest.pulls.create({
        owner,
        repo,
        base,
        head: branch,
        title: `Deploy: ${where}`,
        body: `Automated deployment for ${where}\n\nBranch: \`${branch}\``,
      }),
    )
    return { branch, pr_url: pr.data.html_url, pr_number: pr.data.number }
  } catch (err) {
    const message = githubMessage(err)
    if (githubErrorStatus(err) === 422 && /already exists/i.test(message)) {
      const open = await octokit.rest.pulls.list({
        owner,
        repo,
        head: `${owner}:${branch}`,
        base,
        state: 'open',
      })
      const pr = open.data[0]
      if (pr) return { branch, pr_url: pr.html_url, pr_number: pr.number }
    }
    if (githubErrorStatus(err) === 422 && /no commits between/i.test(message)) {
      throw new AppError(
        422,
        'NO_CHANGES',
        `The spec for ${where} already has these values; nothing to deploy`,
      )
    }
    throw err
  }
}

async function readFile(
  octokit: Octokit,
  target: DeployTarget,
  path: string,
  ref: string,
): Promise<{ text: string; sha: string } | null> {
  try {
    const res = await octokit.rest.repos.getContent({ owner: target.owner, repo: target.repo, path, ref })
    const data = res.data as { type?: string; content?: string; sha: string; size?: number }
    if (Array.isArray(res.data) || data.type !== 'file') {
      throw new AppError(422, 'INVALID_SPEC', `${path} is not a file`)
    }
    // Large files come without content: never mistake one for an empty spec and overwrite it.
    if ((data.size ?? 0) > SPEC_MAX_BYTES) {
      throw new AppError(
        422,
        'SPEC_TOO_LARGE',
        `${path} is too large (${data.size} bytes; the limit is ${SPEC_MAX_BYTES})`,
      )
    }
    return { text: Buffer.from(data.content ?? '', 'base64').toString('utf8'), sha: data.sha }
  } catch (err) {
    if (githubErrorStatus(err) === 404) return null
    throw err
  }
}
