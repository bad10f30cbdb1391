import type { FastifyReply, FastifyRequest } from 'fastify'
import { ApiError, notFound, type SimContext } from './context.js'
import { atLeast, type RepoRecord } from './state.js'
import type { RepoPermission } from './types.js'

/** Token scopes that grant access to private repositories / writes to public ones. */
const hasScope = (scopes: string[], ...wanted: string[]) => wanted.some((w) => scopes.includes(w))

/**
 * Finds a repository and checks the caller may use it at `need` level. Like GitHub, a caller who
 * may not see a private repo, or may not write where writing is needed, gets 404 rather than 403.
 */
export function repoFor(
  ctx: SimContext,
  req: FastifyRequest,
  owner: string,
  name: string,
  need: RepoPermission = 'read',
): { repo: RepoRecord; perm: RepoPermission } {
  const repo = ctx.world.repo(owner, name)
  if (!repo) throw notFound()
  const perm = effectivePermission(ctx, req, repo)
  if (!perm || !atLeast(perm, need)) throw notFound()
  return { repo, perm }
}

/** The caller's permission on a repo after applying their token's OAuth scopes. */
export function effectivePermission(
  ctx: SimContext,
  req: FastifyRequest,
  repo: RepoRecord,
): RepoPermission | null {
  const login = req.sim.login
  const token = req.sim.token
  // GitHub App tokens (ghs_/ghu_) are bounded by their installation, not by OAuth scopes.
  const grant = token ? ctx.apps.grants.get(token.token) : undefined
  if (grant) return ctx.apps.permissionFor(grant, repo, login)
  let perm = ctx.world.permission(repo, login)
  if (token && perm && token.kind !== 'fine-grained' && token.kind !== 'app') {
    const scopes = token.scopes
    if (repo.private && !hasScope(scopes, 'repo')) perm = null
    else if (!repo.private && !hasScope(scopes, 'repo', 'public_repo')) perm = 'read'
  }
  return perm
}

/** Requires an authenticated caller (GitHub: 401 "Requires authentication"). */
export function requireUser(ctx: SimContext, req: FastifyRequest) {
  const login = req.sim.login
  const user = login ? ctx.world.user(login) : undefined
  if (!user)
    throw new ApiError(401, 'Requires authentication', { documentation_url: 'https://docs.github.com/rest' })
  return user
}

/** Slices `items` by `page`/`per_page` and sets GitHub's `link` header. */
export function paginate<T>(req: FastifyRequest, reply: FastifyReply, items: T[], maxPerPage = 100): T[] {
  const q = req.query as Record<string, string | undefined>
  const perPage = Math.min(Math.max(Number(q.per_page) || 30, 1), maxPerPage)
  const page = Math.max(Number(q.page) || 1, 1)
  const last = Math.max(Math.ceil(items.length / perPage), 1)
  const links: string[] = []
  const base = new URL(req.url, 'http://placeholder')
  const href = (p: number) => {
    base.searchParams.set('page', String(p))
    base.searchParams.set('per_page', String(perPage))
    return `<${ctxOrigin(req)}${base.pathname}${base.search}>`
  }
  if (page > 1) links.push(`${href(page - 1)}; rel="prev"`)
  if (page < last) links.push(`${href(page + 1)}; rel="next"`)
  if (page < last) links.push(`${href(last)}; rel="last"`)
  if (page > 1) links.push(`${href(1)}; rel="first"`)
  if (links.length) reply.header('link', links.join(', '))
  return items.slice((page - 1) * perPage, page * perPage)
}

function ctxOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? 'localhost'}`
}

/** Parses a JSON request body into a plain object (GitHub answers 400 otherwise). */
export function bodyOf(req: FastifyRequest): Record<string, unknown> {
  const b = req.body
  // An empty body (Octokit sends "" on PUT/PATCH without parameters) means no parameters.
  if (b === undefined || b === null || (typeof b === 'string' && !b.trim())) return {}
  if (typeof b !== 'object' || Array.isArray(b))
    throw new ApiError(400, 'Problems parsing JSON', { documentation_url: 'https://docs.github.com/rest' })
  return b as Record<string, unknown>
}
