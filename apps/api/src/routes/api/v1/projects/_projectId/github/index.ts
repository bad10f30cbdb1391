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
  requestConnectionRefresh,
  type TokenStatus,
  tokenStatus,
  updateConnection,
  updateConnectionIfStatus,
} from '@portico/db'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify'
import { errorResponses } from '../../../../../../schemas/common.js'
import {
  Connection,
  ConnectionParams,
  CreateConnectionBody,
  Installations,
  InstallationsQuery,
  RefreshBody,
  ReplaceTokenBody,
} from '../../../../../../schemas/connections.js'
import { NoContent } from '../../../../../../schemas/errors.js'
import { safeReturnTo } from '../../../../../auth/index.js'

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

/** Who may call every route here (autohooks.ts), as the reference says it. */
const WHO =
  'Project owners, admins and qa-automation (tenant owners and admins count as project owners and admins; other roles: 403 INSUFFICIENT_ROLE; a project the caller cannot see: 404 PROJECT_NOT_FOUND).'

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
async function checkPat(apiUrl: string, ref: RepoRef | { id: number }, pat: string): Promise<PatCheck> {
  let res: Response
  const signal = AbortSignal.timeout(PAT_CHECK_TIMEOUT_MS)
  const origin = new URL(apiUrl).origin
  // A connected repository is checked by its id: the PAT must reach that very repository.
  let url =
    'id' in ref
      ? `${apiUrl}/repositories/${ref.id}`
      : `${apiUrl}/repos/${encodeURIComponent(ref.owner)}/${encodeURIComponent(ref.repo)}`
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

/**
 * The status read's JSON body by connection view. The frontend polls this read (clone progress),
 * and the read cache hands out the same view object until Postgres reports a change to it, so the
 * body is serialized once per change, not per request (serializing was about 8% of the read's
 * CPU in `npm run bench`). `token_status` depends on the time as well: a body is reused only
 * while it still says the same.
 */
const serializedViews = new WeakMap<ConnectionView, { tokenStatus: TokenStatus; json: string }>()

/** The public view of a connection: no token, no owner/repo split, no clone path. */
function toView(row: ConnectionView, status: TokenStatus = tokenStatus(row)) {
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
    token_status: status,
    token_expires_at: row.token_expires_at,
    refresh_status: row.refresh_status,
    refresh_requested_at: row.refresh_requested_at,
    refreshed_at: row.refreshed_at,
    refresh_error_code: row.refresh_error_code,
    refresh_error_message: row.refresh_error_message,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

const connectionEnded = () =>
  new AppError(
    409,
    'CONNECTION_ENDED',
    'This connection has ended (failed or expired) and keeps no token. Refresh it with a PAT in the body (POST …/github/refresh {"pat": "…"}) or connect again.',
  )
const tokenRequired = () =>
  new AppError(
    409,
    'TOKEN_REQUIRED',
    'This connection keeps no token (it was removed when the connection ended). Send a PAT in the body: {"pat": "…"}.',
  )
const tokenInvalid = () =>
  new AppError(
    409,
    'TOKEN_INVALID',
    'GitHub rejected this connection\'s token (it expired or was revoked). Replace it (PATCH …/github {"pat": "…"}) or send a PAT in the body.',
  )
const cloneInProgress = () =>
  new AppError(
    409,
    'CLONE_IN_PROGRESS',
    'The repository is still being cloned; it will have the latest commit. Refresh once it is analysed.',
  )
/**
 * Whether a connection authenticates with a stored PAT. An App connection acts with installation
 * tokens minted per job and stores none: its credentials are not replaced this way.
 */
const isPatConnection = (row: ConnectionRow) => row.auth_method === 'pat'
const notPatConnection = () =>
  new AppError(409, 'NOT_A_PAT_CONNECTION', 'This connection does not use a personal access token.')

/**
 * Checks a replacement PAT against the connection's own repository: by GitHub's repository id
 * (`GET /repositories/{id}`) when it is recorded, so a PAT that cannot read that very repository
 * (another repository's fine-grained PAT, a user without access) is refused with the connect
 * route's errors (400 INVALID_TOKEN, 403 policies, 503 rate limits…); rows made before the id was
 * recorded are checked by name, and the id GitHub answers must match when both are known.
 */
async function checkReplacementPat(
  config: { GITHUB_URL: string; GITHUB_API_URL: string },
  row: ConnectionRow,
  raw: string,
): Promise<{ pat: string; check: PatCheck }> {
  const pat = raw.trim()
  if (!TOKEN_CHARS.test(pat)) throw invalidToken()
  const ref =
    row.github_repo_id !== null
      ? { id: Number(row.github_repo_id) }
      : parseRepoUrl(row.repo_url, config.GITHUB_URL)
  const check = await checkPat(config.GITHUB_API_URL, ref, pat)
  if (row.github_repo_id !== null && check.repoId !== null && check.repoId !== Number(row.github_repo_id)) {
    throw new AppError(
      400,
      'REPOSITORY_MISMATCH',
      'This PAT answers for another repository than the connected one.',
    )
  }
  return { pat, check }
}

/** The token columns a checked PAT sets: stored encrypted, expiry as GitHub sent it, no longer invalid. */
function tokenColumns(keyring: Parameters<typeof encrypt>[0], pat: string, check: PatCheck) {
  return {
    encrypted_token: encrypt(keyring, pat),
    token_kind: classifyToken(pat),
    token_expires_at: check.tokenExpiresAt,
    token_invalid_at: null,
    ...(check.fullName !== null ? { repo_full_name: check.fullName } : {}),
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
      schema: {
        summary: "Connect the project's GitHub repository (with a PAT or a GitHub App installation)",
        description: `${WHO} Send \`{ repo_url, pat }\` (the PAT is checked against the repository on GitHub, stored encrypted, never returned) or \`{ installation_id, repository_id }\` from GET …/github/installations (no token stored; 503 GITHUB_APP_NOT_CONFIGURED without a GitHub App). Answers the new connection with \`status: pending\`; a clone job is queued and GET …/github shows its progress. 400 INVALID_REPO_URL, INVALID_TOKEN, GITHUB_UNREACHABLE, GITHUB_API_ERROR, INSTALLATION_NOT_ACCESSIBLE, REPOSITORY_NOT_IN_INSTALLATION; 403 organisation policies (GITHUB_SSO_REQUIRED…); 409 CONNECTION_EXISTS while a connection that has not failed or expired exists; 503 GITHUB_RATE_LIMITED or QUEUE_UNAVAILABLE.`,
        params: ConnectionParams,
        body: CreateConnectionBody,
        response: { 201: Connection, ...errorResponses(400, 401, 403, 404, 409, 429, 502, 503) },
      },
    },
    async (request, reply) => {
      const project = request.project!
      const body = request.body
      // Before any GitHub call (a PAT check may take seconds): the answer would be 409 anyway.
      if (await findActiveConnectionForProject(fastify.db, project.tenant_id, project.id)) {
        throw connectionExists()
      }
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

      let row: ConnectionRow
      try {
        row = await insertConnection(fastify.db, values)
      } catch (err) {
        // Concurrent POSTs: the partial unique index lets exactly one through.
        if (isUniqueViolation(err, ONE_ACTIVE_CONNECTION_INDEX)) throw connectionExists()
        throw err
      }
      try {
        await fastify.enqueue(
          'clone',
          { connectionId: row.id, requestId: request.id },
          cloneJobOptions(cloneJobId(row.id)),
        )
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
      schema: {
        summary: "The GitHub App's install link and the installations the caller can reach",
        description: `${WHO} Lists the App's installations the signed-in user can reach, each with the repositories both the user and the installation can read, and \`app.install_url\`, a link to install the App that brings the browser back to \`return_to\` (a relative path on this site; 400 INVALID_RETURN_TO otherwise) through GET /github/setup. 503 GITHUB_APP_NOT_CONFIGURED when no GitHub App is configured.`,
        params: ConnectionParams,
        querystring: InstallationsQuery,
        response: { 200: Installations, ...errorResponses(400, 401, 403, 404, 429, 502, 503) },
      },
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
      schema: {
        summary: "The project's repository connection: status, clone progress, analysis and token status",
        description: `${WHO} The project's most recent connection, whatever its status (\`pending → cloning → cloned → analyzed\`, or \`failed\`/\`expired\`); poll it for \`progress\` (0–100) while it clones. 404 CONNECTION_NOT_FOUND when the project has none.`,
        params: ConnectionParams,
        response: { 200: Connection, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const project = request.project!
      const row = await fastify.readCache.connectionView(project.id, () =>
        findLatestConnectionViewForProject(fastify.db, project.tenant_id, project.id),
      )
      if (!row) throw notFound()
      const status = tokenStatus(row)
      const kept = serializedViews.get(row)
      // The route's own serializer (its 200 schema), as returning the view would use.
      const json = kept?.tokenStatus === status ? kept.json : String(reply.serialize(toView(row, status)))
      if (kept?.json !== json) serializedViews.set(row, { tokenStatus: status, json })
      // A string with a JSON content-type is sent as it is (Fastify's Reply#send).
      return (reply as FastifyReply).type('application/json; charset=utf-8').send(json)
    },
  )

  fastify.patch(
    '/',
    {
      schema: {
        summary: "Replace the connection's personal access token",
        description: `${WHO} For PAT connections only (409 NOT_A_PAT_CONNECTION otherwise): the new PAT is checked against the connected repository itself, with the connect route's errors (400 INVALID_TOKEN, REPOSITORY_MISMATCH…; 403 organisation policies; 503 GITHUB_RATE_LIMITED). Status, commit and analysis are kept and nothing is re-cloned (POST …/github/refresh does that). A failed or expired connection keeps no token: 409 CONNECTION_ENDED (refresh it with a PAT instead). 404 CONNECTION_NOT_FOUND without a connection.`,
        params: ConnectionParams,
        body: ReplaceTokenBody,
        response: { 200: Connection, ...errorResponses(400, 401, 403, 404, 409, 429, 503) },
      },
    },
    async (request) => {
      const project = request.project!
      const row = await findLatestConnectionForProject(fastify.db, project.tenant_id, project.id)
      if (!row) throw notFound()
      if (row.status === 'failed' || row.status === 'expired') throw connectionEnded()
      if (!isPatConnection(row)) throw notPatConnection()
      const { pat, check } = await checkReplacementPat(config, row, request.body.pat)
      // Only the token changes: status, commit and analysis are kept. A row that ended meanwhile
      // is left without a token (the compare on status).
      const updated = await updateConnectionIfStatus(
        fastify.db,
        row.id,
        ['pending', 'cloning', 'cloned', 'analyzed'],
        tokenColumns(config.keyring, pat, check),
      )
      if (!updated) throw connectionEnded()
      request.log.info({ connectionId: row.id, projectId: project.id }, 'connection token replaced')
      return toView(updated)
    },
  )

  fastify.post(
    '/refresh',
    {
      schema: {
        summary: "Fetch the default branch's latest commit and analyse it again",
        description: `${WHO} Answers 202 with the connection and \`refresh_status: queued\` (or the refresh already in flight); the previous analysis stays visible until the new one lands. A failed or expired connection needs a PAT in the body (\`{ "pat": "…" }\`, checked as PATCH checks it). 404 CONNECTION_NOT_FOUND; 409 CLONE_IN_PROGRESS (first clone not finished), TOKEN_REQUIRED (no stored token and no \`pat\`), TOKEN_INVALID (GitHub rejected the stored token and no \`pat\`), NOT_A_PAT_CONNECTION (a \`pat\` for an App connection); 503 QUEUE_UNAVAILABLE or GITHUB_RATE_LIMITED.`,
        params: ConnectionParams,
        body: RefreshBody,
        response: { 202: Connection, ...errorResponses(400, 401, 403, 404, 409, 429, 503) },
      },
    },
    async (request, reply) => {
      const project = request.project!
      let row = await findLatestConnectionForProject(fastify.db, project.tenant_id, project.id)
      if (!row) throw notFound()
      if (row.status === 'pending' || row.status === 'cloning') throw cloneInProgress()
      const raw = request.body?.pat
      if (raw !== undefined) {
        if (!isPatConnection(row)) throw notPatConnection()
        const { pat, check } = await checkReplacementPat(config, row, raw)
        row = await updateConnection(fastify.db, row.id, tokenColumns(config.keyring, pat, check))
        if (!row) throw notFound()
      } else if (isPatConnection(row) && row.encrypted_token === null) {
        throw tokenRequired()
      } else if (row.token_invalid_at !== null) {
        throw tokenInvalid()
      }
      const result = await requestConnectionRefresh(
        {
          db: fastify.db,
          enqueue: (data, opts) => fastify.enqueue('clone', { ...data, requestId: request.id }, opts),
          deduplicatedJobId: (id) => fastify.queues.clone.getDeduplicationJobId(id),
        },
        row.id,
      )
      if (result.outcome === 'not_refreshable') {
        if (!result.row) throw notFound()
        throw cloneInProgress()
      }
      request.log.info(
        { connectionId: row.id, projectId: project.id, outcome: result.outcome },
        'connection refresh requested',
      )
      return reply.code(202).send(toView(result.row))
    },
  )

  fastify.delete(
    '/',
    {
      schema: {
        summary: "Disconnect the project's repository",
        description: `${WHO} Deletes the project's most recent connection, cancels its queued or running clone and removes the clone directory. 404 CONNECTION_NOT_FOUND when the project has none.`,
        params: ConnectionParams,
        response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) },
      },
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
