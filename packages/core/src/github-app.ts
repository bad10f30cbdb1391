import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createAppAuth } from '@octokit/auth-app'
import type { GithubAppSettings } from './config.js'
import { AppError } from './errors.js'
import { createOctokit, type GithubActor, type Octokit } from './github.js'

/** Installation permissions as GitHub names them, e.g. `{ contents: 'read', metadata: 'read' }`. */
export type InstallationPermissions = Record<string, 'read' | 'write' | 'admin'>

/** A minted installation token: `ghs_…`, valid one hour. Never store, log or return it. */
export interface InstallationToken {
  token: string
  /** ISO 8601, when GitHub stops accepting it. */
  expiresAt: string
}

/** Options of {@link GithubApp.installationToken}. */
export interface MintOptions {
  installationId: number
  /** Down-scopes the token to these repositories (GitHub's numeric ids). */
  repositoryIds?: number[]
  /** Down-scopes the token to these permissions (never wider than the installation's: 422). */
  permissions?: InstallationPermissions
  /** Skips auth-app's token cache (after GitHub answered 401 for the cached token). */
  refresh?: boolean
}

/** 503 GITHUB_APP_NOT_CONFIGURED: the App method needs GITHUB_APP_ID, _SLUG and _PRIVATE_KEY. */
export const githubAppNotConfigured = () =>
  new AppError(
    503,
    'GITHUB_APP_NOT_CONFIGURED',
    'Connecting through a GitHub App is not configured on this server (GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_APP_PRIVATE_KEY).',
    { expose: true },
  )

/**
 * Portico's GitHub App: JWTs and installation tokens through `@octokit/auth-app` (no JWT signing
 * of our own), against `GITHUB_API_URL` like every other GitHub call (a GHES `/api/v3` base or
 * the simulator work the same). Minting goes through {@link createOctokit}'s request, so it is
 * throttled on rate limits and counted in the metrics like every other call.
 * GitHub: https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app
 */
export class GithubApp {
  readonly appId: number
  readonly slug: string
  readonly apiUrl: string
  readonly githubUrl: string
  private readonly auth: ReturnType<typeof createAppAuth>

  /**
   * `cacheTokens: false` keeps no installation token in memory between calls (the worker mints
   * one per clone, used and forgotten); by default auth-app reuses a token until shortly before
   * it expires.
   */
  constructor(
    settings: GithubAppSettings,
    urls: { apiUrl: string; githubUrl: string },
    opts: { cacheTokens?: boolean } = {},
  ) {
    this.appId = settings.appId
    this.slug = settings.slug
    this.apiUrl = urls.apiUrl.replace(/\/+$/, '')
    this.githubUrl = urls.githubUrl.replace(/\/+$/, '')
    // retries 0: a user or a job waits on a mint; the throttling plugin still honours retry-after.
    const transport = createOctokit({ baseUrl: this.apiUrl, retries: 0 })
    this.auth = createAppAuth({
      appId: settings.appId,
      privateKey: settings.privateKey,
      request: transport.request,
      log: { warn() {} },
      ...(opts.cacheTokens === false ? { cache: { get: () => '', set: () => {} } } : {}),
    })
  }

  /** An Octokit acting as the App itself (a fresh 10-minute JWT, `Authorization: bearer`). */
  async appOctokit(): Promise<Octokit> {
    const { token } = await this.auth({ type: 'app' })
    return createOctokit({ token, baseUrl: this.apiUrl, retries: 0 })
  }

  /**
   * Mints (or reuses from auth-app's cache, keyed by installation, repositories and permissions)
   * an installation token. GitHub answers 404 for an installation that is gone, 422 when the
   * repositories or permissions are wider than the installation's, 403 when it is suspended.
   * https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app
   */
  async installationToken(opts: MintOptions): Promise<InstallationToken> {
    const result = await this.auth({
      type: 'installation',
      installationId: opts.installationId,
      ...(opts.repositoryIds ? { repositoryIds: opts.repositoryIds } : {}),
      ...(opts.permissions ? { permissions: opts.permissions } : {}),
      ...(opts.refresh ? { refresh: true } : {}),
    })
    return { token: result.token, expiresAt: result.expiresAt }
  }

  /** An Octokit acting as an installation (its full reach). */
  async installationOctokit(installationId: number): Promise<{ octokit: Octokit; token: string }> {
    const { token } = await this.installationToken({ installationId })
    return { octokit: createOctokit({ token, baseUrl: this.apiUrl }), token }
  }

  /**
   * The installation covering `owner` (an org or user), or null when the App is not installed
   * there. `GET /users/{username}/installation` answers for organisations too.
   */
  async installationForOwner(owner: string): Promise<number | null> {
    const octokit = await this.appOctokit()
    try {
      const { data } = await octokit.request('GET /users/{username}/installation', { username: owner })
      return data.id
    } catch (err) {
      if ((err as { status?: number }).status === 404) return null
      throw err
    }
  }

  /** `{GITHUB_URL}/apps/{slug}/installations/new?state=…`: GitHub's install page for this App. */
  installUrl(state: string): string {
    const url = new URL(`${this.githubUrl}/apps/${encodeURIComponent(this.slug)}/installations/new`)
    url.searchParams.set('state', state)
    return url.href
  }
}

/** How long a signed install `state` stays valid (installing can take a while: picking repositories). */
export const INSTALL_STATE_TTL_MS = 60 * 60_000

/**
 * A signed, expiring `state` for the install page: `{returnTo, userId}` plus a nonce, HMAC-SHA256
 * with `secret` (SESSION_SECRET). GitHub hands it back unchanged to the Setup URL.
 */
export function signInstallState(
  secret: string,
  payload: { returnTo: string; userId: string },
  now = Date.now(),
): string {
  const body = Buffer.from(
    JSON.stringify({
      r: payload.returnTo,
      u: payload.userId,
      e: now + INSTALL_STATE_TTL_MS,
      n: randomBytes(8).toString('hex'),
    }),
  ).toString('base64url')
  const mac = createHmac('sha256', `install-state:${secret}`).update(body).digest('base64url')
  return `${body}.${mac}`
}

/** The payload of a state made by {@link signInstallState}, or null if forged, altered, expired or oversized. */
export function verifyInstallState(
  secret: string,
  state: string,
  now = Date.now(),
): { returnTo: string; userId: string } | null {
  if (state.length > 2048) return null
  const [body, mac, extra] = state.split('.')
  if (!body || !mac || extra !== undefined) return null
  const expected = createHmac('sha256', `install-state:${secret}`).update(body).digest()
  const given = Buffer.from(mac, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  try {
    const data = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>
    if (typeof data.r !== 'string' || typeof data.u !== 'string' || typeof data.e !== 'number') return null
    if (data.e < now) return null
    return { returnTo: data.r, userId: data.u }
  } catch {
    return null
  }
}

/**
 * The service actor: who Portico acts as when no person does (`/health`, fallback reads, work on
 * the specs repository). With a GitHub App configured it is the App's installation on GH_REPO's
 * owner (GH_TOKEN is then not needed); otherwise GH_TOKEN. `get()` answers null when neither is
 * available (no App and no GH_TOKEN, or the App is not installed on the owner).
 */
export class ServiceActor {
  readonly app: GithubApp | null
  private readonly token: string | undefined
  private readonly owner: string | undefined
  private readonly apiUrl: string
  private installation: { id: number | null; until: number } | undefined
  private current: { token: string; octokit: Octokit } | undefined

  constructor(
    config: { GH_TOKEN?: string; GH_REPO?: string; GITHUB_API_URL: string },
    app: GithubApp | null,
  ) {
    this.app = app
    this.token = config.GH_TOKEN
    this.owner = config.GH_REPO?.split('/')[0]
    this.apiUrl = config.GITHUB_API_URL
  }

  /** `app` when the App acts, `token` for GH_TOKEN, null when there is no service identity. */
  get kind(): 'app' | 'token' | null {
    if (this.app && this.owner) return 'app'
    return this.token ? 'token' : null
  }

  /** The installation on GH_REPO's owner, looked up at most every 5 minutes. */
  private async installationId(): Promise<number | null> {
    if (!this.app || !this.owner) return null
    if (this.installation && this.installation.until > Date.now()) return this.installation.id
    const id = await this.app.installationForOwner(this.owner)
    this.installation = { id, until: Date.now() + 5 * 60_000 }
    return id
  }

  /**
   * The actor, or null. With the App, the installation token comes from auth-app's cache (renewed
   * before its hour is up); GitHub failures (unreachable, 401 for a bad key) are thrown.
   */
  async get(): Promise<GithubActor | null> {
    if (this.kind === 'app') {
      const id = await this.installationId()
      if (id === null) return null
      const { token } = await (this.app as GithubApp).installationToken({ installationId: id })
      if (this.current?.token !== token) {
        this.current = { token, octokit: createOctokit({ token, baseUrl: this.apiUrl }) }
      }
      return { octokit: this.current.octokit, token, source: 'service', login: null, userId: null }
    }
    if (!this.token) return null
    this.current ??= {
      token: this.token,
      octokit: createOctokit({ token: this.token, baseUrl: this.apiUrl }),
    }
    return { octokit: this.current.octokit, token: this.token, source: 'service', login: null, userId: null }
  }
}
