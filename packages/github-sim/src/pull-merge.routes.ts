import type { FastifyRequest } from 'fastify'
import { bodyOf, repoFor } from './access.js'
import type { ApiRouter } from './api.js'
import { ApiError, notFound, type SimContext, validationFailed } from './context.js'
import { git } from './git.js'
import { touch } from './repos.routes.js'
import type { PullRecord, RepoRecord } from './state.js'
import { pullRequest } from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const MERGE_DOCS = 'https://docs.github.com/rest/pulls/pulls#merge-a-pull-request'
const UPDATE_DOCS = 'https://docs.github.com/rest/pulls/pulls#update-a-pull-request'
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')

/** Three-way merge of two commits into a tree with `git merge-tree --write-tree`; null on conflicts. */
async function mergeTree(repo: RepoRecord, base: string, head: string): Promise<string | null> {
  if (await repo.git.isAncestor(base, head)) return (await repo.git.readCommit(head)).tree
  const { stdout, code } = await git(['merge-tree', '--write-tree', '--no-messages', base, head], {
    cwd: repo.git.dir,
    home: repo.git.home,
    okCodes: [0, 1],
  })
  if (code !== 0) return null
  return stdout.toString('utf8').split('\n')[0]!.trim()
}

async function stats(repo: RepoRecord, pr: PullRecord) {
  const commits = await repo.git.countAhead(pr.base.sha, pr.head.sha)
  const diff = await repo.git.diffStat(pr.base.sha, pr.head.sha)
  return { commits, ...diff }
}

/** Merging (`PUT …/pulls/{n}/merge`) and updating/closing (`PATCH …/pulls/{n}`) pull requests. */
export function registerPullMergeRoutes(api: ApiRouter, ctx: SimContext): void {
  const { world } = ctx
  const pullOf = (repo: RepoRecord, req: FastifyRequest, doc: string) => {
    const pr = repo.pulls.find((p) => String(p.number) === params(req).pull_number)
    if (!pr) throw notFound(doc)
    return pr
  }

  api.put(
    '/repos/{owner}/{repo}/pulls/{pull_number}/merge',
    async (req) => {
      const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!, 'write')
      const pr = pullOf(repo, req, MERGE_DOCS)
      const body = bodyOf(req)
      const method = body.merge_method ?? 'merge'
      if (method !== 'merge' && method !== 'squash' && method !== 'rebase')
        throw validationFailed('Validation Failed', MERGE_DOCS, [
          { resource: 'PullRequest', field: 'merge_method', code: 'invalid' },
        ])
      return repo.git.exclusive(async () => {
        const notMergeable = () =>
          new ApiError(405, 'Pull Request is not mergeable', { documentation_url: MERGE_DOCS })
        if (pr.state !== 'open') throw notMergeable()
        const head = await repo.git.refSha(`refs/heads/${pr.head.ref}`)
        const baseRef = `refs/heads/${pr.base.ref}`
        const base = await repo.git.refSha(baseRef)
        if (!head || !base) throw notMergeable()
        if (typeof body.sha === 'string' && body.sha !== head)
          throw new ApiError(409, 'Head branch was modified. Review and try the merge again.', {
            documentation_url: MERGE_DOCS,
          })
        const tree = await mergeTree(repo, base, head)
        if (!tree) throw notMergeable()
        const user = world.user(req.sim.login!)!
        const author = {
          name: user.name || user.login,
          email: user.email ?? `${user.id}+${user.login}@users.noreply.github.com`,
          date: '',
        }
        const committer = { name: 'GitHub', email: 'noreply@github.com', date: '' }
        const title =
          typeof body.commit_title === 'string' && body.commit_title
            ? body.commit_title
            : method === 'merge'
              ? `Merge pull request #${pr.number} from ${pr.head.label.replace(':', '/')}`
              : `${pr.title} (#${pr.number})`
        const detail =
          typeof body.commit_message === 'string' ? body.commit_message : method === 'merge' ? pr.title : ''
        const message = detail ? `${title}\n\n${detail}\n` : `${title}\n`
        const parents = method === 'merge' ? [base, head] : [base]
        const sha = await repo.git.commitTree(tree, parents, message, author, committer)
        await repo.git.updateRef(baseRef, sha, base)
        touch(repo)
        const at = now()
        pr.head.sha = head
        pr.base.sha = base
        pr.state = 'closed'
        pr.closedAt = at
        pr.mergedAt = at
        pr.updatedAt = at
        pr.mergeCommitSha = sha
        pr.mergedBy = user.login
        ctx.events.push(repo, baseRef, base, sha, user.login)
        ctx.events.pullRequest(repo, pr, 'closed', user.login)
        if (pr.base.ref === repo.defaultBranch) ctx.afterMerge?.(repo, sha)
        return { sha, merged: true, message: 'Pull Request successfully merged' }
      })
    },
    { scopes: 'repo' },
  )

  api.patch(
    '/repos/{owner}/{repo}/pulls/{pull_number}',
    async (req) => {
      const { repo, perm } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const pr = pullOf(repo, req, UPDATE_DOCS)
      const body = bodyOf(req)
      const isAuthor = req.sim.login?.toLowerCase() === pr.userLogin.toLowerCase()
      if (perm === 'read' && !isAuthor) throw notFound(UPDATE_DOCS)
      if (body.state !== undefined && body.state !== 'open' && body.state !== 'closed')
        throw validationFailed('Validation Failed', UPDATE_DOCS, [
          { resource: 'PullRequest', field: 'state', code: 'invalid' },
        ])
      if (body.state === 'open' && pr.mergedAt)
        throw validationFailed('Validation Failed', UPDATE_DOCS, [
          {
            resource: 'PullRequest',
            code: 'custom',
            message: 'state cannot be changed. The pull request has been merged.',
          },
        ])
      let action: 'closed' | 'reopened' | 'edited' | null = null
      if (typeof body.title === 'string' && body.title !== pr.title) {
        pr.title = body.title
        action = 'edited'
      }
      if (
        body.body !== undefined &&
        (typeof body.body === 'string' || body.body === null) &&
        body.body !== pr.body
      ) {
        pr.body = body.body
        action = 'edited'
      }
      if (typeof body.base === 'string' && body.base !== pr.base.ref) {
        const baseSha = await repo.git.refSha(`refs/heads/${body.base}`)
        if (!baseSha)
          throw validationFailed('Validation Failed', UPDATE_DOCS, [
            { resource: 'PullRequest', field: 'base', code: 'invalid' },
          ])
        pr.base = { ref: body.base, sha: baseSha }
        action = 'edited'
      }
      const at = now()
      if (action === 'edited') ctx.events.pullRequest(repo, pr, 'edited', req.sim.login)
      if (body.state === 'closed' && pr.state === 'open') {
        pr.state = 'closed'
        pr.closedAt = at
        action = 'closed'
        ctx.events.pullRequest(repo, pr, 'closed', req.sim.login)
      } else if (body.state === 'open' && pr.state === 'closed') {
        pr.state = 'open'
        pr.closedAt = null
        action = 'reopened'
        ctx.events.pullRequest(repo, pr, 'reopened', req.sim.login)
      }
      if (action) pr.updatedAt = at
      return pullRequest(world, repo, ctx.urls, pr, perm, await stats(repo, pr))
    },
    { scopes: 'repo' },
  )
}
