import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { type RepoRecord, SEED_TIME, type World } from './state.js'
import type { AppPermissionLevel, RepoPermission, SeedGitHubApp, SeedGitHubAppInstallation } from './types.js'

export type AppPermissions = Record<string, AppPermissionLevel>

/** A GitHub App known to the simulator, with its key pair and bot user. */
export interface AppRecord {
  seed: SeedGitHubApp
  id: number
  slug: string
  name: string
  owner: string
  clientId: string
  clientSecret: string
  /** PEM (PKCS#8) — generated when the seed has none; tests read it through `sim.githubApp(slug)`. */
  privateKeyPem: string | null
  publicKey: KeyObject
  permissions: AppPermissions
  events: string[]
  setupUrl: string | null
  callbackUrl: string | null
  expireUserTokens: boolean
  /** Login of the App's bot user (`{slug}[bot]`), the actor behind installation tokens. */
  botLogin: string
  createdAt: string
}

export interface InstallationRecord {
  id: number
  appId: number
  /** Login of the user or organization. */
  account: string
  repositorySelection: 'all' | 'selected'
  /** Repository ids when `selected` (ids survive renames and transfers). */
  repositoryIds: Set<number>
  permissions: AppPermissions
  events: string[]
  suspendedAt: string | null
  createdAt: string
  updatedAt: string
}

/** What an installation token (`ghs_`) or an App user token (`ghu_`) may do. */
export interface TokenGrant {
  appId: number
  /** Set for installation tokens. */
  installationId?: number
  /** Installation tokens: repository ids, or null for every repository of the installation. */
  repositoryIds?: number[] | null
  permissions?: AppPermissions
}

interface RefreshRecord {
  appId: number
  login: string
  expiresAt: number
  accessToken: string
}

const LEVEL: Record<AppPermissionLevel, number> = { read: 1, write: 2, admin: 3 }
/** Installation tokens live one hour; App user tokens 8 hours; refresh tokens 6 months (GitHub's values). */
export const INSTALLATION_TOKEN_TTL_S = 3600
export const USER_TOKEN_TTL_S = 8 * 3600
export const REFRESH_TOKEN_TTL_S = 15_897_600

/** True when every permission in `wanted` is granted at least at that level by `granted`. */
export function permissionsWithin(wanted: AppPermissions, granted: AppPermissions): boolean {
  return Object.entries(wanted).every(([k, v]) => {
    const g = granted[k]
    return g !== undefined && LEVEL[v] !== undefined && LEVEL[g] >= LEVEL[v]
  })
}

/** Random GitHub-looking token body (36 chars after the prefix). */
export function newToken(prefix: 'ghs_' | 'ghu_' | 'ghr_'): string {
  const len = prefix === 'ghr_' ? 76 : 36
  return `${prefix}${randomBytes(len).toString('base64url').replace(/[-_]/g, 'x').slice(0, len)}`
}

/** GitHub Apps, their installations and the grants behind App tokens. */
export class GitHubApps {
  readonly apps = new Map<number, AppRecord>()
  readonly installations = new Map<number, InstallationRecord>()
  /** token → grant, for `ghs_` and `ghu_` tokens. */
  readonly grants = new Map<string, TokenGrant>()
  readonly refreshTokens = new Map<string, RefreshRecord>()
  #nextInstallation = 60_000_000

  constructor(
    readonly world: World,
    seeds: SeedGitHubApp[],
  ) {
    for (const s of seeds) this.addApp(s)
  }

  addApp(s: SeedGitHubApp): AppRecord {
    let privateKeyPem: string | null = s.private_key ?? null
    let publicKey: KeyObject
    if (s.public_key) publicKey = createPublicKey(s.public_key)
    else if (privateKeyPem) publicKey = createPublicKey(createPrivateKey(privateKeyPem))
    else {
      const pair = generateKeyPairSync('rsa', { modulusLength: 2048 })
      privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      publicKey = pair.publicKey
    }
    const botLogin = `${s.slug}[bot]`
    if (!this.world.user(botLogin))
      this.world.addUser({ login: botLogin, id: 41_000_000 + s.id, name: s.name, type: 'Bot' })
    const app: AppRecord = {
      seed: s,
      id: s.id,
      slug: s.slug,
      name: s.name,
      owner: s.owner,
      clientId: s.client_id,
      clientSecret: s.client_secret,
      privateKeyPem,
      publicKey,
      permissions: { metadata: 'read', ...s.permissions },
      events: s.events ?? [],
      setupUrl: s.setup_url ?? null,
      callbackUrl: s.callback_url ?? (s.setup_url ? new URL('/auth/callback', s.setup_url).toString() : null),
      expireUserTokens: s.expire_user_tokens ?? true,
      botLogin,
      createdAt: SEED_TIME,
    }
    this.apps.set(app.id, app)
    for (const i of s.installations ?? []) this.addInstallation(app, i)
    return app
  }

  /** Finds an App by its JWT issuer: the numeric App id or the client id. */
  byIssuer(iss: string): AppRecord | undefined {
    if (/^\d+$/.test(iss)) return this.apps.get(Number(iss))
    return [...this.apps.values()].find((a) => a.clientId === iss)
  }

  bySlug(slug: string): AppRecord | undefined {
    return [...this.apps.values()].find((a) => a.slug.toLowerCase() === slug.toLowerCase())
  }

  byClientId(clientId: string | undefined): AppRecord | undefined {
    return clientId ? [...this.apps.values()].find((a) => a.clientId === clientId) : undefined
  }

  addInstallation(app: AppRecord, s: Omit<SeedGitHubAppInstallation, 'id'> & { id?: number }) {
    const account = this.world.user(s.account)?.login ?? this.world.org(s.account)?.login
    if (!account) throw new Error(`installation account ${s.account} is not a seeded user or org`)
    const ids = new Set<number>()
    for (const name of s.repositories ?? []) {
      const repo = this.world.repo(account, name)
      if (!repo) throw new Error(`installation ${s.id}: unknown repository ${account}/${name}`)
      ids.add(repo.id)
    }
    const now = SEED_TIME
    const rec: InstallationRecord = {
      id: s.id ?? this.#nextInstallation++,
      appId: app.id,
      account,
      repositorySelection: s.repository_selection,
      repositoryIds: ids,
      permissions: { ...app.permissions, ...(s.permissions ?? {}) },
      events: app.events,
      suspendedAt: s.suspended ? now : null,
      createdAt: now,
      updatedAt: now,
    }
    this.installations.set(rec.id, rec)
    return rec
  }

  installationsOf(appId: number): InstallationRecord[] {
    return [...this.installations.values()].filter((i) => i.appId === appId)
  }

  /** The App's installation on `account`, if any. */
  installationOn(appId: number, account: string): InstallationRecord | undefined {
    return this.installationsOf(appId).find((i) => i.account.toLowerCase() === account.toLowerCase())
  }

  /** True when the installation covers `repo` (its account's repository, all or selected). */
  covers(inst: InstallationRecord, repo: RepoRecord): boolean {
    if (repo.owner.toLowerCase() !== inst.account.toLowerCase()) return false
    return inst.repositorySelection === 'all' || inst.repositoryIds.has(repo.id)
  }

  /** Repositories the installation covers, sorted by id. */
  repositoriesOf(inst: InstallationRecord): RepoRecord[] {
    return [...this.world.repos.values()].filter((r) => this.covers(inst, r)).sort((a, b) => a.id - b.id)
  }

  /** The App's installation that covers `repo`, if any and not suspended. */
  installationFor(appId: number, repo: RepoRecord): InstallationRecord | undefined {
    const inst = this.installationOn(appId, repo.owner)
    return inst && this.covers(inst, repo) ? inst : undefined
  }

  /** Every active installation (any App) that covers `repo`. */
  installationsCovering(repo: RepoRecord): InstallationRecord[] {
    return [...this.installations.values()].filter((i) => !i.suspendedAt && this.covers(i, repo))
  }

  /** Issues a `ghs_` installation token (1 hour) for the given repositories and permissions. */
  mintInstallationToken(
    inst: InstallationRecord,
    repositoryIds: number[] | null,
    permissions: AppPermissions,
  ): { token: string; expiresAt: string } {
    const app = this.apps.get(inst.appId)!
    const token = newToken('ghs_')
    const expiresAt = isoSeconds(Date.now() + INSTALLATION_TOKEN_TTL_S * 1000)
    this.world.addToken(app.botLogin, token, { scopes: [], kind: 'app', expiresAt })
    this.grants.set(token, { appId: app.id, installationId: inst.id, repositoryIds, permissions })
    return { token, expiresAt }
  }

  /** Issues a `ghu_` user token for `login`, with a `ghr_` refresh token when the App expires them. */
  mintUserToken(app: AppRecord, login: string) {
    const token = newToken('ghu_')
    const expiresAt = app.expireUserTokens ? isoSeconds(Date.now() + USER_TOKEN_TTL_S * 1000) : undefined
    this.world.addToken(login, token, { scopes: [], kind: 'app', expiresAt })
    this.grants.set(token, { appId: app.id })
    if (!app.expireUserTokens) return { token }
    const refreshToken = newToken('ghr_')
    this.refreshTokens.set(refreshToken, {
      appId: app.id,
      login,
      expiresAt: Date.now() + REFRESH_TOKEN_TTL_S * 1000,
      accessToken: token,
    })
    return { token, refreshToken, expiresIn: USER_TOKEN_TTL_S, refreshExpiresIn: REFRESH_TOKEN_TTL_S }
  }

  /**
   * Exchanges a refresh token (single use, as on GitHub): the old user token is revoked and a new
   * pair issued. Returns null when the refresh token is unknown, used, expired or another App's.
   */
  refreshUserToken(app: AppRecord, refreshToken: string) {
    const rec = this.refreshTokens.get(refreshToken)
    if (!rec || rec.appId !== app.id || rec.expiresAt <= Date.now()) return null
    this.refreshTokens.delete(refreshToken)
    const old = this.world.tokens.get(rec.accessToken)
    if (old) old.revoked = true
    return { login: rec.login, ...this.mintUserToken(app, rec.login) }
  }

  /**
   * Repository permission behind an App token: an installation token reaches the repositories it was
   * minted for (at its `contents` level) plus public ones read-only; a user token reaches what both
   * the user and one of the App's installations can (https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-with-a-github-app-on-behalf-of-a-user).
   */
  permissionFor(grant: TokenGrant, repo: RepoRecord, login: string | null): RepoPermission | null {
    const fallback: RepoPermission | null = repo.private ? null : 'read'
    if (grant.installationId !== undefined) {
      const inst = this.installations.get(grant.installationId)
      if (!inst || inst.suspendedAt || !this.covers(inst, repo)) return fallback
      if (grant.repositoryIds && !grant.repositoryIds.includes(repo.id)) return fallback
      return levelToRepo(grant.permissions ?? inst.permissions) ?? fallback
    }
    const userPerm = this.world.permission(repo, login)
    const inst = this.installationFor(grant.appId, repo)
    if (!inst || inst.suspendedAt || !userPerm) return userPerm && fallback
    const instPerm = levelToRepo(inst.permissions) ?? 'read'
    return LEVEL[instPerm] < LEVEL[userPerm] ? instPerm : userPerm
  }

  /**
   * Revokes every user token (`ghu_`) and refresh token (`ghr_`) App `appId` holds for `login`, as
   * when the user revokes the App's authorization in their GitHub settings. Returns how many.
   */
  revokeUserAuthorization(appId: number, login: string): number {
    let revoked = 0
    for (const [token, g] of this.grants) {
      if (g.appId !== appId || g.installationId !== undefined) continue
      const rec = this.world.tokens.get(token)
      if (!rec || rec.revoked || rec.login.toLowerCase() !== login.toLowerCase()) continue
      rec.revoked = true
      revoked += 1
    }
    for (const [token, r] of this.refreshTokens) {
      if (r.appId === appId && r.login.toLowerCase() === login.toLowerCase()) this.refreshTokens.delete(token)
    }
    return revoked
  }

  /** Revokes every token minted for an installation (removed or suspended). */
  revokeInstallationTokens(installationId: number): void {
    for (const [token, g] of this.grants) {
      if (g.installationId !== installationId) continue
      const rec = this.world.tokens.get(token)
      if (rec) rec.revoked = true
    }
  }
}

function levelToRepo(p: AppPermissions): RepoPermission | null {
  if (p.administration === 'write') return 'admin'
  if (p.contents === 'write') return 'write'
  if (p.contents || p.metadata) return 'read'
  return null
}

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
