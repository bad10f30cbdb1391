import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  AppError,
  classifyGithubAnswer,
  classifyToken,
  cloneJobId,
  cloneJobOptions,
  clonePath,
  encrypt,
  githubAnswerOfResponse,
  githubRefusalToAppError,
  isUuid,
  parseRepoUrl,
  type RepoRef,
  removeClone,
  signInstallState,
} from '@portico/core'
import {
  type ConnectionRow,
  type ConnectionView,
  deleteConnection,
  findActiveConnectionForProject,
  findLatestConnectionForProject,
  findLatestConnectionViewForProject,
  insertConnection,
  isUniqueViolation,
  type NewConnection,
  ONE_ACTIVE_CONNECTION_INDEX,
} from '@portico/db'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import {
  Connection,
  ConnectionParams,
  CreateConnectionBody,
  Installations,
  InstallationsQuery,
} from '../../../../../../schemas/connections.js'
import { NoContent } from '../../../../../../schemas/errors.js'
import { safeReturnTo } from '../../../../../auth/index.js'

const ROLES = ['owner', 'admin', 'qa-automation'] as const
const PAT_CHECK_TIMEOUT_MS = 10_000
// Printable ASCII only: anything else could never be a token and must not reach a header.
const TOKEN_CHARS = /^[\x21-\x7e]+$/

const invalidToken = () =>
  new AppError(400, 'INVALID_TOKEN', 'GitHub PAT is invalid or does not have access to this repository.')
const connectionExists = () =>
  new AppError(
    409,
    'CONNECTION_EXISTS',
    'A GitHub connection already exists for this project. Disconnect it first.',
  )
const notFound = () => new AppError(404, 'CONNECTION_NOT_FOUND', 'This project has no GitHub connection.')

interface PatCheck {
  /** GitHub's numeric repository id: the name may change, the id does not. */
  repoId: number | null
  /** Canonical `owner/name` as GitHub answered (after a rename or transfer, the new one). */
  fullName: string | null
  defaultBranch: string | null
  tokenExpiresAt: Date | null
}

/** `github-authentication-token-expiration: 2099-01-01 00:00:00 UTC` → Date. */
function parseExpiration(value: string | null): Date | null {
  if (!value) return null
  const date = new Date(value.replace(/^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/, '$1T$2Z'))
  return Number.isNaN(date.getTime()) ? null : date
}

/** A refusal's JSON body, or undefined when it is not JSON or over 64 KiB. */
async function readSmallJson(res: Response): Promise<unknown> {
  const text = await res.text().catch(() => '')
  if (text.length > 64 * 1024) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Redirects followed for a renamed or transferred repository (GitHub sends one). */
const MAX_REDIRECTS = 3

/**
 * Checks the PAT against `GET /repos/{owner}/{repo}` with a 10 s budget and no retries (a plain
 * fetch: a user waits on this, and each outcome maps to one error code). A renamed or
 * transferred repository answers 301 to `/repositories/{id}`: that is followed (at most
 * {@link MAX_REDIRECTS} times) only on the API's own origin, so the token never goes elsewhere.
 */
async function checkPat(apiUrl: string, ref: RepoRef, pat: string): Promise<PatCheck> {
  let res: Response
  const signal = AbortSignal.timeout(PAT_CHECK_TIMEOUT_MS)
  const origin = new URL(apiUrl).origin
  let url = `${apiUrl}/repos/${encodeURIComponent(ref.owner)}/${encodeURIComponent(ref.repo)}`
  for (let hop = 0; ; hop++) {
    try {
      res = await fetch(url, {
        headers: {
          accept: 'application/vnd.github+json',
          authorization: `token ${pat}`,
          'user-agent': 'portico',
          'x-github-api-version': '2022-11-28',
        },
        redirect: 'manual',
        signal,
      })
    } catch {
      throw new AppError(
        400,
        'GITHUB_UNREACHABLE',
        'Could not reach GitHub to check the PAT. Try again later.',
      )
    }
    const location = res.headers.get('location')
    if (![301, 302, 307, 308].includes(res.status) || location === null) break
    await res.body?.cancel()
    const next = new URL(location, url)
    if (next.origin !== origin || hop + 1 >= MAX_REDIRECTS) {
      throw new AppError(
        400,
        'GITHUB_API_ERROR',
        'GitHub redirected the repository somewhere Portico does not follow (another host, or too many redirects).',
      )
    }
    url = next.href
  }
  if (res.status !== 200) {
    // GitHub's refusal body is small JSON ({ message, documentation_url }); read at most that.
    const body = await readSmallJson(res)
    const refusal = classifyGithubAnswer(githubAnswerOfResponse(res, body))
    switch (refusal.kind) {
      // 401, 404 and a plain 403 all mean: this token cannot read this repository.
      case 'unauthorized':
      case 'not_found':
      case 'forbidden':
        throw invalidToken()
      case 'unavailable':
      case 'other':
        throw new AppError(400, 'GITHUB_API_ERROR', `GitHub answered ${res.status} while checking the PAT.`)
      default:
        // Rate limits (503 GITHUB_RATE_LIMITED) and organisation policies / missing permissions
        // (403 with their own codes): the token may be fine, so never "invalid token".
        throw githubRefusalToAppError(refusal)
    }
  }
  const repo = (await res.json().catch(() => ({}))) as {
    default_branch?: unknown
    id?: unknown
    full_name?: unknown
  }
  const fullName = typeof repo.full_name === 'string' ? repo.full_name : null
  return {
    repoId: typeof repo.id === 'number' && Number.isSafeInteger(repo.id) && repo.id > 0 ? repo.id : null,
    // Only a name that is itself a valid owner/repo under the configured GitHub is kept.
    fullName:
      fullName !== null && /^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/.test(fullName) ? fullName : null,
    defaultBranch: typeof repo.default_branch === 'string' ? repo.default_branch : null,
    tokenExpiresAt: parseExpiration(res.headers.get('github-authentication-token-expiration')),
  }
}

/** The public view of a connection: no token, no owner/repo split, no clone path. */
function toView(row: ConnectionView) {
  return {
    id: row.id,
    project_id: row.project_id,
    repo_url: row.repo_url,
    status: row.status,
    progress: row.progress,
    default_branch: row.default_branch,
    commit_sha: row.commit_sha,
    routes_count: row.routes_count,
    components_count: row.components_count,
    endpoints_count: row.endpoints_count,
    analysis_summary: row.analysis_summary,
    error_message: row.error_message,
    error_code: row.error_code,
    full_name: row.repo_full_name ?? `${row.owner}/${row.repo}`,
    github_repo_id: row.github_repo_id === null ? null : Number(row.github_repo_id),
    auth_method: row.auth_method,
    installation_id: row.installation_id === null ? null : Number(row.installation_id),
    repository_id: row.github_repo_id === null ? null : Number(row.github_repo_id),
    expires_at: row.expires_at,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

/** Removes a connection's clone directory and any partial ones beside it (same layout as the worker's). */
async function removeCloneDir(cloneRoot: string, row: ConnectionRow, log: FastifyBaseLogger): Promise<void> {
  if (!isUuid(row.tenant_id) || !isUuid(row.id)) return
  try {
    await removeClone(clonePath(cloneRoot, row.tenant_id, row.id))
  } catch (err) {
    // A clone still writing can race the removal; the worker removes it when it stops, the sweep otherwise.
    log.warn(
      { err: { message: (err as Error).message }, connectionId: row.id },
      'could not remove the clone directory',
    )
  }
}

/** Removes a clone job that has not started; a running one notices its row is gone and stops. */
async function cancelCloneJob(fastify: FastifyInstance, log: FastifyBaseLogger, id: string): Promise<void> {
  try {
    const job = await fastify.queues.clone.getJob(cloneJobId(id))
    if (job && (await job.getState()) !== 'active') await job.remove()
  } catch (err) {
    // Best effort: the worker checks the row before and during the clone.
    log.warn({ err: { message: (err as Error).message }, connectionId: id }, 'could not remove the clone job')
  }
}

/**
 * A project's GitHub repository connection: connect with a PAT or through the GitHub App's
 * installations (listed by GET …/installations), read its status, disconnect.
 */
export default async function connectionRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify

  fastify.post(
    '/',
    {
      preHandler: fastify.requireProjectRole(...ROLES),
      schema: { params: ConnectionParams, body: CreateConnectionBody, response: { 201: Connection } },
    },
    async (request, reply) => {
      const project = request.project!
      const body = request.body
      let values: NewConnection
      if ('installation_id' in body) {
        // Through the GitHub App: ids checked with the user's token; no token is stored.
        fastify.requireGithubApp()
        const repo = await fastify.userInstallationRepository(
          request,
          body.installation_id,
          body.repository_id,
        )
        const ref = parseRepoUrl(`${config.GITHUB_URL}/${repo.full_name}`, config.GITHUB_URL)
        values = {
          tenant_id: project.tenant_id,
          project_id: project.id,
          repo_url: `${config.GITHUB_URL}/${repo.full_name}`,
          owner: ref.owner,
          repo: ref.repo,
          github_repo_id: repo.id,
          repo_full_name: repo.full_name,
          default_branch: repo.default_branch,
          encrypted_token: null,
          token_kind: null,
          token_expires_at: null,
          auth_method: 'app',
          installation_id: body.installation_id,
          created_by: request.user?.id ?? null,
        }
      } else {
        const repoUrl = body.repo_url.trim()
        const pat = body.pat.trim()
        const ref = parseRepoUrl(repoUrl, config.GITHUB_URL)
        if (!TOKEN_CHARS.test(pat)) throw invalidToken()
        const check = await checkPat(config.GITHUB_API_URL, ref, pat)
        values = {
          tenant_id: project.tenant_id,
          project_id: project.id,
          repo_url: repoUrl,
          owner: ref.owner,
          repo: ref.repo,
          github_repo_id: check.repoId,
          repo_full_name: check.fullName,
          default_branch: check.defaultBranch,
          encrypted_token: encrypt(config.keyring, pat),
          token_kind: classifyToken(pat),
          token_expires_at: check.tokenExpiresAt,
          created_by: request.user?.id ?? null,
        }
      }

      if (await findActiveConnectionForProject(fastify.db, project.tenant_id, project.id)) {
        throw connectionExists()
      }
      let row: ConnectionRow
      try {
        row = await insertConnection(fastify.db, values)
      } catch (err) {
        // Concurrent POSTs: the partial unique index lets exactly one through.
        if (isUniqueViolation(err, ONE_ACTIVE_CONNECTION_INDEX)) throw connectionExists()
        throw err
      }
      try {
        await fastify.enqueue('clone', { connectionId: row.id }, cloneJobOptions(cloneJobId(row.id)))
      } catch (err) {
        // No job, no connection: a pending row nobody will clone must not block the project.
        await deleteConnection(fastify.db, row.id, row.tenant_id)
        throw err
      }
      request.log.info({ connectionId: row.id, projectId: project.id }, 'repository connection created')
      return reply.code(201).send(toView(row))
    },
  )

  fastify.get(
    '/installations',
    {
      preHandler: fastify.requireProjectRole(...ROLES),
      schema: { params: ConnectionParams, querystring: InstallationsQuery, response: { 200: Installations } },
    },
    async (request) => {
      const app = fastify.requireGithubApp()
      let returnTo = '/'
      if (request.query.return_to !== undefined) {
        const safe = safeReturnTo(request.query.return_to, config.PUBLIC_URL)
        if (!safe)
          throw new AppError(400, 'INVALID_RETURN_TO', 'return_to must be a relative path on this site.')
        returnTo = safe
      }
      const installations = await fastify.userInstallations(request)
      const state = signInstallState(config.SESSION_SECRET, { returnTo, userId: request.user!.id })
      return { app: { slug: app.slug, install_url: app.installUrl(state) }, installations }
    },
  )

  fastify.get(
    '/',
    {
      preHandler: fastify.requireProjectRole(...ROLES),
      schema: { params: ConnectionParams, response: { 200: Connection } },
    },
    async (request) => {
      const project = request.project!
      const row = await findLatestConnectionViewForProject(fastify.db, project.tenant_id, project.id)
      if (!row) throw notFound()
      return toView(row)
    },
  )

  fastify.delete(
    '/',
    {
      preHandler: fastify.requireProjectRole(...ROLES),
      schema: { params: ConnectionParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const project = request.project!
      const latest = await findLatestConnectionForProject(fastify.db, project.tenant_id, project.id)
      if (!latest) throw notFound()
      const row = await deleteConnection(fastify.db, latest.id, project.tenant_id)
      if (!row) throw notFound()
      await cancelCloneJob(fastify, request.log, row.id)
      await removeCloneDir(config.cloneRoot, row, request.log)
      request.log.info({ connectionId: row.id, projectId: project.id }, 'repository connection deleted')
      return reply.code(204).send(null)
    },
  )
}
