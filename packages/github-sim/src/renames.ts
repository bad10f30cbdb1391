import { mkdir, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { repoFor } from './access.js'
import { API_PREFIX, type ApiRouter } from './api.js'
import { ApiError, type SimContext } from './context.js'
import { fullRepository } from './views.js'

const REDIRECT_DOCS =
  'https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects'

/** Old `owner/name` (lowercase) → repository id, per simulator. */
const redirects = new WeakMap<SimContext, Map<string, number>>()

function redirectsOf(ctx: SimContext): Map<string, number> {
  let map = redirects.get(ctx)
  if (!map) {
    map = new Map()
    redirects.set(ctx, map)
  }
  return map
}

function byId(ctx: SimContext, id: number) {
  for (const repo of ctx.world.repos.values()) if (repo.id === id) return repo
  return undefined
}

/**
 * Renames or transfers a repository as GitHub does: it keeps its id, git data, pulls and
 * collaborators; the old `owner/name` keeps answering with redirects (REST: 301 to
 * `/repositories/{id}…`; git over HTTP: 301 to the new `owner/name.git/…`) until a repository
 * with the old name is created. Sends the `repository` event (`renamed` or `transferred`).
 */
export async function renameRepository(ctx: SimContext, from: string, to: string): Promise<void> {
  const [fromOwner = '', fromName = ''] = from.split('/')
  const [toOwner = '', toName = ''] = to.split('/')
  const repo = ctx.world.repo(fromOwner, fromName)
  if (!repo) throw new Error(`unknown repo ${from}`)
  if (ctx.world.repo(toOwner, toName)) throw new Error(`repo ${to} already exists`)
  const owner = ctx.world.user(toOwner)?.login ?? ctx.world.org(toOwner)?.login
  if (!owner) throw new Error(`unknown owner ${toOwner}`)
  const target = join(ctx.world.reposRoot, owner, `${toName}.git`)
  await mkdir(dirname(target), { recursive: true })
  await rename(join(ctx.world.reposRoot, repo.owner, `${repo.name}.git`), target)
  ctx.world.repos.delete(`${repo.owner}/${repo.name}`.toLowerCase())
  const { git: _git, pulls, ...rest } = repo
  const moved = ctx.world.registerRepo({ ...rest, owner, name: toName })
  moved.pulls.push(...pulls)
  const map = redirectsOf(ctx)
  map.set(`${repo.owner}/${repo.name}`.toLowerCase(), repo.id)
  map.delete(`${owner}/${toName}`.toLowerCase())
  // GitHub tells the repository's hooks and Apps, with what changed (its `changes` object).
  if (owner === repo.owner) {
    ctx.events.repository(moved, 'renamed', { repository: { name: { from: repo.name } } }, null)
  } else {
    const kind = ctx.world.org(repo.owner) ? 'organization' : 'user'
    ctx.events.repository(moved, 'transferred', { owner: { from: { [kind]: { login: repo.owner } } } }, null)
  }
}

/**
 * Serves `GET /repositories/{id}` and the redirects of renamed repositories. Installed after the
 * shared API hooks (so authentication, faults and rate limits apply first).
 */
export function registerRenameRoutes(app: FastifyInstance, api: ApiRouter, ctx: SimContext): void {
  api.get(
    '/repositories/{id}',
    async (req) => {
      const id = Number((req.params as { id?: string }).id)
      const found = Number.isSafeInteger(id) ? byId(ctx, id) : undefined
      if (!found) throw new ApiError(404, 'Not Found', { documentation_url: 'https://docs.github.com/rest' })
      const { repo, perm } = repoFor(ctx, req, found.owner, found.name)
      return fullRepository(ctx.world, repo, ctx.urls, perm, await repo.git.sizeKb())
    },
    { scopes: 'repo' },
  )

  app.addHook('onRequest', async (req, reply) => {
    const map = redirects.get(ctx)
    if (!map || map.size === 0) return
    const [path = '', query] = req.url.split('?', 2)
    const suffix = query === undefined ? '' : `?${query}`
    const rest = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path.slice(API_PREFIX.length))
    if (path.startsWith(`${API_PREFIX}/`) && rest) {
      const [, owner = '', name = '', tail = ''] = rest
      if (ctx.world.repo(owner, name)) return
      const id = map.get(`${owner}/${name}`.toLowerCase())
      if (id === undefined || !byId(ctx, id)) return
      const location = `${ctx.urls.api}/repositories/${id}${tail}${suffix}`
      return reply
        .code(301)
        .header('location', location)
        .send({ message: 'Moved Permanently', url: location, documentation_url: REDIRECT_DOCS })
    }
    const git = /^\/([^/]+)\/([^/]+?)(\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(path)
    if (!git) return
    const [, owner = '', name = '', , service = ''] = git
    if (ctx.world.repo(owner, name)) return
    const id = map.get(`${owner}/${name}`.toLowerCase())
    const repo = id === undefined ? undefined : byId(ctx, id)
    if (!repo) return
    return reply
      .code(301)
      .header('location', `${ctx.urls.web}/${repo.owner}/${repo.name}.git/${service}${suffix}`)
      .send('')
  })
}
