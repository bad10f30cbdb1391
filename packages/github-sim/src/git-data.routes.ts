import type { FastifyRequest } from 'fastify'
import { bodyOf, repoFor } from './access.js'
import type { ApiRouter } from './api.js'
import { notFound, type SimContext, validationFailed } from './context.js'
import type { GitRepo, Identity, TreeChange } from './git-repo.js'
import { touch } from './repos.routes.js'
import type { RepoRecord } from './state.js'
import { gitCommit, gitRef, gitTree, nodeId, type Schemas } from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const SHA = /^[0-9a-f]{40}$/
const ZERO = '0000000000000000000000000000000000000000'
const REFS_DOCS = 'https://docs.github.com/rest/git/refs'
const TREES_DOCS = 'https://docs.github.com/rest/git/trees#create-a-tree'
const COMMITS_DOCS = 'https://docs.github.com/rest/git/commits#create-a-commit'
const BLOBS_DOCS = 'https://docs.github.com/rest/git/blobs#create-a-blob'
/** GitHub truncates recursive trees above 100,000 entries. */
const TREE_LIMIT = 100_000

const VALID_MODES = new Set(['100644', '100755', '040000', '160000', '120000'])

function refName(raw: string): string {
  return `refs/${raw.replace(/^refs\//, '').replace(/^\/+/, '')}`
}

async function refJson(ctx: SimContext, repo: RepoRecord, ref: string, sha: string) {
  return gitRef(repo, ctx.urls, ref, sha, (await repo.git.objectType(sha)) ?? 'commit')
}

/** True when `ref` is a name git (and GitHub) accepts: refs/<type>/<name…>. */
function validRefName(ref: string): boolean {
  if (!/^refs\/[^/]+\/.+/.test(ref)) return false
  return !/(\.\.|[\s~^:?*[\\]|@\{|\/\/|\/$|\.lock$|\.$|^\.|\/\.)/.test(ref)
}

/** Git database routes: refs, trees, blobs and commits, all read and written with git plumbing. */
export function registerGitDataRoutes(api: ApiRouter, ctx: SimContext): void {
  const read = (req: FastifyRequest) => repoFor(ctx, req, params(req).owner!, params(req).repo!).repo
  const write = (req: FastifyRequest) =>
    repoFor(ctx, req, params(req).owner!, params(req).repo!, 'write').repo

  api.get(
    '/repos/{owner}/{repo}/git/ref/{ref*}',
    async (req) => {
      const repo = read(req)
      const ref = refName(params(req)['*'] ?? '')
      const sha = await repo.git.refSha(ref)
      if (!sha || !(await repo.git.listRefs(ref)).some((r) => r.ref === ref))
        throw notFound(`${REFS_DOCS}#get-a-reference`)
      return refJson(ctx, repo, ref, sha)
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/git/matching-refs/{ref*}',
    async (req) => {
      const repo = read(req)
      const prefix = refName(params(req)['*'] ?? '')
      const refs = (await repo.git.listRefs('refs/')).filter((r) => r.ref.startsWith(prefix))
      return refs.map((r) => gitRef(repo, ctx.urls, r.ref, r.sha, r.type))
    },
    { scopes: 'repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/git/refs',
    async (req, reply) => {
      const repo = write(req)
      const body = bodyOf(req)
      if (typeof body.ref !== 'string')
        throw validationFailed(
          'Invalid request.\n\n"ref" wasn\'t supplied.',
          `${REFS_DOCS}#create-a-reference`,
        )
      if (typeof body.sha !== 'string')
        throw validationFailed(
          'Invalid request.\n\n"sha" wasn\'t supplied.',
          `${REFS_DOCS}#create-a-reference`,
        )
      const ref = body.ref
      if (!validRefName(ref))
        throw validationFailed(`${ref} is not a valid ref name.`, `${REFS_DOCS}#create-a-reference`)
      const sha = body.sha
      if (!SHA.test(sha) || !(await repo.git.objectType(sha)))
        throw validationFailed('Object does not exist', `${REFS_DOCS}#create-a-reference`)
      return repo.git.exclusive(async () => {
        if (await repo.git.refSha(ref))
          throw validationFailed('Reference already exists', `${REFS_DOCS}#create-a-reference`)
        await repo.git.updateRef(ref, sha, ZERO)
        touch(repo)
        if (ref.startsWith('refs/heads/')) ctx.events.push(repo, ref, ZERO, sha, req.sim.login)
        reply.code(201).header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/git/${ref}`)
        return refJson(ctx, repo, ref, sha)
      })
    },
    { scopes: 'repo' },
  )

  api.patch(
    '/repos/{owner}/{repo}/git/refs/{ref*}',
    async (req) => {
      const repo = write(req)
      const ref = refName(params(req)['*'] ?? '')
      const body = bodyOf(req)
      const doc = `${REFS_DOCS}#update-a-reference`
      if (typeof body.sha !== 'string')
        throw validationFailed('Invalid request.\n\n"sha" wasn\'t supplied.', doc)
      const sha = body.sha
      return repo.git.exclusive(async () => {
        const current = await repo.git.refSha(ref)
        if (!current) throw validationFailed('Reference does not exist', doc)
        if (!SHA.test(sha) || !(await repo.git.objectType(sha)))
          throw validationFailed('Object does not exist', doc)
        if (body.force !== true && !(await repo.git.isAncestor(current, sha)))
          throw validationFailed('Update is not a fast forward', doc)
        await repo.git.updateRef(ref, sha, current)
        touch(repo)
        if (ref.startsWith('refs/heads/')) ctx.events.push(repo, ref, current, sha, req.sim.login)
        return refJson(ctx, repo, ref, sha)
      })
    },
    { scopes: 'repo' },
  )

  api.delete(
    '/repos/{owner}/{repo}/git/refs/{ref*}',
    async (req, reply) => {
      const repo = write(req)
      const ref = refName(params(req)['*'] ?? '')
      return repo.git.exclusive(async () => {
        if (!(await repo.git.refSha(ref)))
          throw validationFailed('Reference does not exist', `${REFS_DOCS}#delete-a-reference`)
        await repo.git.deleteRef(ref)
        touch(repo)
        return reply.code(204).send()
      })
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/git/trees/{tree_sha*}',
    async (req) => {
      const repo = read(req)
      const rev = params(req)['*'] ?? ''
      const q = req.query as Record<string, string | undefined>
      const recursive =
        q.recursive !== undefined && q.recursive !== '' && q.recursive !== '0' && q.recursive !== 'false'
      const sha = SHA.test(rev) ? await repo.git.resolve(rev, 'tree') : await resolveTreeish(repo.git, rev)
      if (!sha) throw notFound('https://docs.github.com/rest/git/trees#get-a-tree')
      let entries = await repo.git.readTree(sha, recursive)
      let truncated = false
      if (entries.length > TREE_LIMIT) {
        entries = entries.slice(0, TREE_LIMIT)
        truncated = true
      }
      if (recursive && ctx.truncateTrees) {
        entries = entries.slice(0, Math.ceil(entries.length / 2))
        truncated = true
      }
      return gitTree(repo, ctx.urls, sha, entries, truncated)
    },
    { scopes: 'repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/git/trees',
    async (req, reply) => {
      const repo = write(req)
      const body = bodyOf(req)
      if (!Array.isArray(body.tree))
        throw validationFailed('Invalid request.\n\n"tree" wasn\'t supplied.', TREES_DOCS)
      let base: string | null = null
      if (body.base_tree !== undefined && body.base_tree !== null) {
        base = typeof body.base_tree === 'string' ? await repo.git.resolve(body.base_tree, 'tree') : null
        if (!base) throw validationFailed('Invalid tree info', TREES_DOCS)
      }
      const changes: TreeChange[] = []
      for (const raw of body.tree as unknown[]) {
        const e = (raw ?? {}) as Record<string, unknown>
        const path = e.path
        const mode = String(e.mode ?? '')
        const type = (e.type ??
          (mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob')) as TreeChange['type']
        if (
          typeof path !== 'string' ||
          !path ||
          path.startsWith('/') ||
          path.endsWith('/') ||
          path.split('/').includes('..')
        )
          throw validationFailed(`tree.path contains a malformed path component`, TREES_DOCS)
        if (!VALID_MODES.has(mode))
          throw validationFailed(`tree.mode contains an invalid value: ${mode}`, TREES_DOCS)
        let sha: string | null
        if (typeof e.content === 'string') sha = await repo.git.writeBlob(e.content)
        else if (e.sha === null) sha = null
        else if (typeof e.sha === 'string' && SHA.test(e.sha)) {
          const actual = type === 'commit' ? 'commit' : await repo.git.objectType(e.sha)
          if (actual !== type) throw validationFailed(`tree.sha ${e.sha} is not a valid ${type}`, TREES_DOCS)
          sha = e.sha
        } else throw validationFailed('Must supply a valid tree.sha or tree.content', TREES_DOCS)
        changes.push({ path, mode: mode === '040000' ? '040000' : mode, type, sha })
      }
      const tree = await repo.git.applyChanges(base, changes)
      reply.code(201)
      return gitTree(repo, ctx.urls, tree, await repo.git.readTree(tree), false)
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/git/blobs/{file_sha}',
    async (req): Promise<Schemas['blob']> => {
      const repo = read(req)
      const sha = params(req).file_sha ?? ''
      if (!SHA.test(sha) || (await repo.git.objectType(sha)) !== 'blob')
        throw notFound('https://docs.github.com/rest/git/blobs#get-a-blob')
      const content = await repo.git.readBlob(sha)
      return {
        sha,
        node_id: nodeId('Blob', sha),
        size: content.length,
        url: `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/git/blobs/${sha}`,
        content:
          (content.toString('base64').match(/.{1,60}/g) ?? []).join('\n') + (content.length ? '\n' : ''),
        encoding: 'base64',
      }
    },
    { scopes: 'repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/git/blobs',
    async (req, reply): Promise<Schemas['short-blob']> => {
      const repo = write(req)
      const body = bodyOf(req)
      if (typeof body.content !== 'string')
        throw validationFailed('Invalid request.\n\n"content" wasn\'t supplied.', BLOBS_DOCS)
      const encoding = body.encoding ?? 'utf-8'
      if (encoding !== 'utf-8' && encoding !== 'base64')
        throw validationFailed(`encoding ${String(encoding)} is not a valid encoding`, BLOBS_DOCS)
      const content =
        encoding === 'base64' ? Buffer.from(body.content, 'base64') : Buffer.from(body.content, 'utf8')
      const sha = await repo.git.writeBlob(content)
      reply.code(201).header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/git/blobs/${sha}`)
      return { sha, url: `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/git/blobs/${sha}` }
    },
    { scopes: 'repo' },
  )

  api.get(
    '/repos/{owner}/{repo}/git/commits/{commit_sha}',
    async (req) => {
      const repo = read(req)
      const sha = params(req).commit_sha ?? ''
      if (!SHA.test(sha) || (await repo.git.objectType(sha)) !== 'commit')
        throw notFound('https://docs.github.com/rest/git/commits#get-a-commit-object')
      return gitCommit(repo, ctx.urls, await repo.git.readCommit(sha))
    },
    { scopes: 'repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/git/commits',
    async (req, reply) => {
      const repo = write(req)
      const body = bodyOf(req)
      if (typeof body.message !== 'string')
        throw validationFailed('Invalid request.\n\n"message" wasn\'t supplied.', COMMITS_DOCS)
      if (typeof body.tree !== 'string')
        throw validationFailed('Invalid request.\n\n"tree" wasn\'t supplied.', COMMITS_DOCS)
      if (!SHA.test(body.tree) || (await repo.git.objectType(body.tree)) !== 'tree')
        throw validationFailed('Tree SHA does not exist', COMMITS_DOCS)
      const parents = Array.isArray(body.parents) ? body.parents : []
      for (const p of parents) {
        if (typeof p !== 'string' || !SHA.test(p) || (await repo.git.objectType(p)) !== 'commit')
          throw validationFailed('Parent SHA does not exist or is not a commit object', COMMITS_DOCS)
      }
      const user = ctx.world.user(req.sim.login!)!
      const fallback: Identity = {
        name: user.name || user.login,
        email: user.email ?? `${user.id}+${user.login}@users.noreply.github.com`,
        date: '',
      }
      const ident = (v: unknown): Identity | undefined => {
        const o = v as { name?: unknown; email?: unknown; date?: unknown } | undefined
        if (o && typeof o.name === 'string' && typeof o.email === 'string')
          return { name: o.name, email: o.email, date: typeof o.date === 'string' ? o.date : '' }
        return undefined
      }
      const author = ident(body.author) ?? fallback
      const committer = ident(body.committer) ?? author
      const sha = await repo.git.commitTree(body.tree, parents as string[], body.message, author, committer)
      reply
        .code(201)
        .header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/git/commits/${sha}`)
      return gitCommit(repo, ctx.urls, await repo.git.readCommit(sha))
    },
    { scopes: 'repo' },
  )
}

/** `tree_sha` may also be a branch/tag name or a commit sha, as on GitHub. */
async function resolveTreeish(git: GitRepo, rev: string): Promise<string | null> {
  for (const candidate of [`refs/heads/${rev}`, `refs/tags/${rev}`, rev]) {
    const sha = await git.resolve(candidate, 'tree')
    if (sha) return sha
  }
  return null
}
