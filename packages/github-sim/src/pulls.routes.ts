import type { FastifyRequest } from 'fastify'
import { bodyOf, paginate, repoFor } from './access.js'
import type { ApiRouter } from './api.js'
import { notFound, type SimContext, validationFailed } from './context.js'
import type { PullRecord, RepoRecord } from './state.js'
import { pullRequest, pullRequestSimple } from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const CREATE_DOCS = 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request'

const invalid = (message: string, errors: Record<string, unknown>[]) =>
  validationFailed(
    message,
    CREATE_DOCS,
    errors.map((e) => ({ resource: 'PullRequest', ...e })),
  )

/** Refreshes a PR's head/base shas from the branches, as GitHub does while the PR is open. */
async function refresh(repo: RepoRecord, p: PullRecord): Promise<void> {
  if (p.state !== 'open') return
  const head = await repo.git.refSha(`refs/heads/${p.head.ref}`)
  const base = await repo.git.refSha(`refs/heads/${p.base.ref}`)
  if (head) p.head.sha = head
  if (base) p.base.sha = base
}

/** Pull request routes: list, create, get. */
export function registerPullRoutes(api: ApiRouter, ctx: SimContext): void {
  const { world } = ctx

  api.get(
    '/repos/{owner}/{repo}/pulls',
    async (req, reply) => {
      const { repo, perm } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const q = req.query as Record<string, string | undefined>
      const state = q.state ?? 'open'
      if (!['open', 'closed', 'all'].includes(state))
        throw validationFailed(
          'Validation Failed',
          'https://docs.github.com/rest/pulls/pulls#list-pull-requests',
          [{ resource: 'Search', field: 'state', code: 'invalid' }],
        )
      for (const p of repo.pulls) await refresh(repo, p)
      let pulls = repo.pulls.filter((p) => state === 'all' || p.state === state)
      if (q.head) {
        const [owner, branch] = q.head.includes(':') ? q.head.split(':', 2) : [repo.owner, q.head]
        pulls = pulls.filter((p) => p.head.label.toLowerCase() === `${owner}:${branch}`.toLowerCase())
      }
      if (q.base) pulls = pulls.filter((p) => p.base.ref === q.base)
      const asc = q.direction === 'asc'
      pulls = [...pulls].sort((a, b) => (asc ? a.number - b.number : b.number - a.number))
      return paginate(req, reply, pulls).map((p) => pullRequestSimple(world, repo, ctx.urls, p, perm))
    },
    { scopes: 'repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/pulls',
    async (req, reply) => {
      const { repo, perm } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const body = bodyOf(req)
      if (typeof body.head !== 'string' || !body.head)
        throw invalid('Validation Failed', [{ field: 'head', code: 'missing_field' }])
      if (typeof body.base !== 'string' || !body.base)
        throw invalid('Validation Failed', [{ field: 'base', code: 'missing_field' }])
      if ((typeof body.title !== 'string' || !body.title) && body.issue === undefined)
        throw invalid('Validation Failed', [{ field: 'title', code: 'missing_field' }])
      const [headOwner, headBranch] = body.head.includes(':')
        ? (body.head.split(':', 2) as [string, string])
        : [repo.owner, body.head]
      if (headOwner.toLowerCase() !== repo.owner.toLowerCase())
        throw invalid('Validation Failed', [{ field: 'head', code: 'invalid' }])
      return repo.git.exclusive(async () => {
        const baseSha = await repo.git.refSha(`refs/heads/${body.base}`)
        if (!baseSha) throw invalid('Validation Failed', [{ field: 'base', code: 'invalid' }])
        const headSha = await repo.git.refSha(`refs/heads/${headBranch}`)
        if (!headSha) throw invalid('Validation Failed', [{ field: 'head', code: 'invalid' }])
        const label = `${repo.owner}:${headBranch}`
        if (repo.pulls.some((p) => p.state === 'open' && p.head.label === label && p.base.ref === body.base))
          throw invalid('Validation Failed', [
            { code: 'custom', message: `A pull request already exists for ${label}.` },
          ])
        if ((await repo.git.countAhead(baseSha, headSha)) === 0)
          throw invalid('Validation Failed', [
            { code: 'custom', message: `No commits between ${body.base} and ${headBranch}` },
          ])
        const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
        const pr: PullRecord = {
          id: world.nextId(),
          number: repo.pulls.length + 1,
          title: String(body.title ?? ''),
          body: typeof body.body === 'string' ? body.body : null,
          state: 'open',
          head: { label, ref: headBranch, repoKey: `${repo.owner}/${repo.name}`.toLowerCase(), sha: headSha },
          base: { ref: body.base as string, sha: baseSha },
          userLogin: req.sim.login!,
          draft: body.draft === true,
          createdAt: now,
          updatedAt: now,
        }
        repo.pulls.push(pr)
        ctx.events.pullRequest(repo, pr, 'opened', req.sim.login)
        reply
          .code(201)
          .header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/pulls/${pr.number}`)
        return pullRequest(world, repo, ctx.urls, pr, perm, await stats(repo, pr))
      })
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/pulls/{pull_number}',
    async (req) => {
      const { repo, perm } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const pr = repo.pulls.find((p) => String(p.number) === params(req).pull_number)
      if (!pr) throw notFound('https://docs.github.com/rest/pulls/pulls#get-a-pull-request')
      await refresh(repo, pr)
      return pullRequest(world, repo, ctx.urls, pr, perm, await stats(repo, pr))
    },
    { scopes: 'repo' },
  )
}

async function stats(repo: RepoRecord, pr: PullRecord) {
  const commits = await repo.git.countAhead(pr.base.sha, pr.head.sha)
  const diff = await repo.git.diffStat(pr.base.sha, pr.head.sha)
  return { commits, ...diff }
}
