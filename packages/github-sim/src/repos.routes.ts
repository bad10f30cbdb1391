import type { FastifyReply, FastifyRequest } from 'fastify'
import { parse as parseYaml } from 'yaml'
import { bodyOf, effectivePermission, paginate, repoFor, requireUser } from './access.js'
import type { ApiRouter } from './api.js'
import { ApiError, notFound, type SimContext, validationFailed } from './context.js'
import type { RepoRecord } from './state.js'
import type { RepoPermission } from './types.js'
import {
  branchWithProtection,
  contentDirectory,
  contentFile,
  fileCommit,
  fullRepository,
  repository,
  shortBranch,
  workflow,
} from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const query = (req: FastifyRequest) => req.query as Record<string, string | undefined>
const CONTENTS_DOCS = 'https://docs.github.com/rest/repos/contents#create-or-update-file-contents'

/** Resolves `?ref=` (default branch when absent) to a commit sha, or 404 like GitHub. */
export async function commitForRef(repo: RepoRecord, ref: string | undefined): Promise<string> {
  const name = ref || repo.defaultBranch
  const sha = await repo.git.resolveCommitish(name)
  if (!sha)
    throw new ApiError(404, `No commit found for the ref ${name}`, {
      documentation_url: 'https://docs.github.com/rest/repos/contents#get-repository-content',
    })
  return sha
}

/** Finds the tree entry at `path` in commit `sha`'s tree ('' = the root tree). */
async function entryAt(repo: RepoRecord, commitSha: string, path: string) {
  const commit = await repo.git.readCommit(commitSha)
  if (!path) return { mode: '040000', type: 'tree' as const, sha: commit.tree, path: '' }
  let tree = commit.tree
  const parts = path.split('/')
  for (const [i, part] of parts.entries()) {
    const entries = await repo.git.readTree(tree)
    const e = entries.find((x) => x.path === part)
    if (!e) return null
    if (i === parts.length - 1) return e
    if (e.type !== 'tree') return null
    tree = e.sha
  }
  return null
}

type Listed = { repo: RepoRecord; perm: RepoPermission }

function sortRepos(list: Listed[], sort: string, direction: string | undefined): Listed[] {
  const key = (r: RepoRecord) =>
    sort === 'created' ? r.createdAt : sort === 'updated' ? r.updatedAt : sort === 'pushed' ? r.pushedAt : ''
  const asc = direction ? direction === 'asc' : sort === 'full_name'
  const sorted = [...list].sort((a, b) =>
    sort === 'full_name'
      ? `${a.repo.owner}/${a.repo.name}`.localeCompare(`${b.repo.owner}/${b.repo.name}`, 'en', {
          sensitivity: 'base',
        })
      : key(a.repo).localeCompare(key(b.repo)) || a.repo.id - b.repo.id,
  )
  return asc ? sorted : sorted.reverse()
}

/** Repository, branch, workflow and contents routes. */
export function registerRepoRoutes(api: ApiRouter, ctx: SimContext): void {
  const { world } = ctx

  /** Repositories the caller can see, with their effective permission. */
  const visible = (req: FastifyRequest): Listed[] =>
    [...world.repos.values()].flatMap((repo) => {
      const perm = effectivePermission(ctx, req, repo)
      return perm ? [{ repo, perm }] : []
    })

  api.get(
    '/user/repos',
    async (req, reply) => {
      const user = requireUser(ctx, req)
      const q = query(req)
      const me = user.login.toLowerCase()
      if (q.type && (q.visibility || q.affiliation))
        throw validationFailed(
          'If you specify visibility or affiliation, you cannot specify type.',
          'https://docs.github.com/rest/repos/repos#list-repositories-for-the-authenticated-user',
        )
      const type = q.type ?? 'all'
      const affiliation = new Set(
        (
          q.affiliation ??
          (type === 'owner'
            ? 'owner'
            : type === 'member'
              ? 'collaborator,organization_member'
              : 'owner,collaborator,organization_member')
        ).split(','),
      )
      const list = visible(req).filter(({ repo }) => {
        const owner = repo.owner.toLowerCase() === me
        const collaborator = repo.collaborators.has(me)
        const member = world.org(repo.owner)?.members.get(me)?.state === 'active'
        const affiliated =
          (affiliation.has('owner') && owner) ||
          (affiliation.has('collaborator') && collaborator) ||
          (affiliation.has('organization_member') && member)
        const vis = q.visibility ?? (type === 'public' ? 'public' : type === 'private' ? 'private' : 'all')
        return affiliated && (vis === 'all' || (vis === 'private') === repo.private)
      })
      const sorted = sortRepos(list, q.sort ?? 'full_name', q.direction)
      return paginate(req, reply, sorted).map(({ repo, perm }) => repository(world, repo, ctx.urls, perm))
    },
    { scopes: 'repo' },
  )

  api.get('/orgs/{org}/repos', async (req, reply) => {
    const org = world.org(params(req).org ?? '')
    if (!org) throw notFound('https://docs.github.com/rest/repos/repos#list-organization-repositories')
    const q = query(req)
    const type = q.type ?? 'all'
    const me = req.sim.login?.toLowerCase()
    const list = visible(req).filter(({ repo }) => {
      if (repo.owner.toLowerCase() !== org.login.toLowerCase()) return false
      if (type === 'public') return !repo.private
      if (type === 'private') return repo.private
      if (type === 'forks') return false
      if (type === 'member')
        return me !== undefined && (repo.collaborators.has(me) || org.members.get(me)?.state === 'active')
      return true
    })
    const sorted = sortRepos(list, q.sort ?? 'created', q.direction)
    return paginate(req, reply, sorted).map(({ repo, perm }) => repository(world, repo, ctx.urls, perm))
  })

  api.get(
    '/repos/{owner}/{repo}',
    async (req) => {
      const { repo, perm } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      return fullRepository(world, repo, ctx.urls, perm, await repo.git.sizeKb())
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/branches',
    async (req, reply) => {
      const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const refs = await repo.git.listRefs('refs/heads/')
      const all = refs.map((r) => shortBranch(repo, ctx.urls, r.ref.slice('refs/heads/'.length), r.sha))
      return paginate(req, reply, all)
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/branches/{branch*}',
    async (req) => {
      const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const name = params(req)['*'] ?? ''
      const sha = await repo.git.refSha(`refs/heads/${name}`)
      if (!sha)
        throw new ApiError(404, 'Branch not found', {
          documentation_url: 'https://docs.github.com/rest/branches/branches#get-a-branch',
        })
      return branchWithProtection(world, repo, ctx.urls, name, await repo.git.readCommit(sha))
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/actions/workflows',
    async (req, reply) => {
      const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
      const head = await repo.git.resolve(`refs/heads/${repo.defaultBranch}`)
      const dir = head ? await entryAt(repo, head, '.github/workflows') : null
      const files = dir?.type === 'tree' ? await repo.git.readTree(dir.sha) : []
      const flows = []
      for (const f of files.filter((e) => e.type === 'blob' && /\.ya?ml$/.test(e.path))) {
        const path = `.github/workflows/${f.path}`
        let name = path
        try {
          const doc = parseYaml((await repo.git.readBlob(f.sha)).toString('utf8')) as {
            name?: unknown
          } | null
          if (typeof doc?.name === 'string') name = doc.name
        } catch {
          // GitHub lists unparsable workflow files under their path.
        }
        flows.push(workflow(repo, ctx.urls, path, name))
      }
      return { total_count: flows.length, workflows: paginate(req, reply, flows) }
    },
    { scopes: 'repo' },
  )

  const getContents = async (req: FastifyRequest, reply: FastifyReply) => {
    const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!)
    const path = (params(req)['*'] ?? '').replace(/^\/+|\/+$/g, '')
    const ref = query(req).ref || repo.defaultBranch
    const sha = await commitForRef(repo, query(req).ref)
    const entry = await entryAt(repo, sha, path)
    if (!entry) throw notFound('https://docs.github.com/rest/repos/contents#get-repository-content')
    if (entry.type === 'tree') {
      return contentDirectory(repo, ctx.urls, path, await repo.git.readTree(entry.sha), ref)
    }
    const content = await repo.git.readBlob(entry.sha)
    // `application/vnd.github.raw` (or `.v3.raw`) asks for the bytes themselves.
    if (/application\/vnd\.github(\.v3)?\.raw/.test(req.headers.accept ?? '')) {
      reply.type('application/vnd.github.raw; charset=utf-8')
      return reply.send(content)
    }
    return contentFile(repo, ctx.urls, path, entry.sha, content, ref)
  }
  api.get('/repos/{owner}/{repo}/contents', getContents, { scopes: 'repo' })
  api.get('/repos/{owner}/{repo}/contents/{path*}', getContents, { scopes: 'repo' })

  api.put(
    '/repos/{owner}/{repo}/contents/{path*}',
    async (req, reply) => {
      const { repo } = repoFor(ctx, req, params(req).owner!, params(req).repo!, 'write')
      const path = (params(req)['*'] ?? '').replace(/^\/+|\/+$/g, '')
      const body = bodyOf(req)
      if (typeof body.message !== 'string' || !body.message)
        throw validationFailed('Invalid request.\n\n"message" wasn\'t supplied.', CONTENTS_DOCS)
      if (typeof body.content !== 'string')
        throw validationFailed('Invalid request.\n\n"content" wasn\'t supplied.', CONTENTS_DOCS)
      if (!/^[A-Za-z0-9+/=\s]*$/.test(body.content))
        throw validationFailed('content is not valid Base64', CONTENTS_DOCS)
      if (!path) throw notFound(CONTENTS_DOCS)
      const branch = typeof body.branch === 'string' && body.branch ? body.branch : repo.defaultBranch
      const user = world.user(req.sim.login!)!
      const ident = (v: unknown) => {
        const o = v as { name?: unknown; email?: unknown; date?: unknown } | undefined
        if (o && typeof o.name === 'string' && typeof o.email === 'string')
          return { name: o.name, email: o.email, date: typeof o.date === 'string' ? o.date : '' }
        return undefined
      }
      const committer = ident(body.committer) ?? {
        name: user.name || user.login,
        email: user.email ?? `${user.id}+${user.login}@users.noreply.github.com`,
        date: '',
      }
      const author = ident(body.author) ?? committer
      const content = Buffer.from(body.content, 'base64')

      return repo.git.exclusive(async () => {
        const ref = `refs/heads/${branch}`
        const tip = await repo.git.refSha(ref)
        if (!tip) throw new ApiError(404, `Branch ${branch} not found`, { documentation_url: CONTENTS_DOCS })
        const existing = await entryAt(repo, tip, path)
        if (existing && existing.type !== 'blob')
          throw validationFailed(`Invalid request.\n\n"${path}" is a directory.`, CONTENTS_DOCS)
        if (existing) {
          if (typeof body.sha !== 'string' || !body.sha)
            throw validationFailed('Invalid request.\n\n"sha" wasn\'t supplied.', CONTENTS_DOCS)
          if (body.sha !== existing.sha)
            throw new ApiError(409, `${path} does not match ${body.sha}`, {
              documentation_url: CONTENTS_DOCS,
            })
        }
        const blob = await repo.git.writeBlob(content)
        const parent = await repo.git.readCommit(tip)
        const tree = await repo.git.applyChanges(parent.tree, [{ path, sha: blob }])
        const commitSha = await repo.git.commitTree(tree, [tip], body.message as string, author, committer)
        await repo.git.updateRef(ref, commitSha, tip)
        touch(repo)
        ctx.events.push(repo, ref, tip, commitSha, req.sim.login)
        const c = await repo.git.readCommit(commitSha)
        reply.code(existing ? 200 : 201)
        return fileCommit(repo, ctx.urls, path, blob, content.length, branch, c)
      })
    },
    { scopes: 'repo' },
  )
}

/** Marks a repository as pushed to now. */
export function touch(repo: RepoRecord): void {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
  repo.pushedAt = now
  repo.updatedAt = now
}
