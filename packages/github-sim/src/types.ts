/** Permission a user has on a repository, weakest first. */
export type RepoPermission = 'read' | 'write' | 'admin'

/** A token known to the simulator. `kind` mirrors GitHub's token prefixes. */
export type TokenKind = 'classic' | 'oauth' | 'fine-grained' | 'app'

export interface SeedToken {
  token: string
  scopes: string[]
  kind?: TokenKind
  /** ISO timestamp; sent back as `github-authentication-token-expiration` and enforced. */
  expires_at?: string
}

export interface SeedUser {
  login: string
  id: number
  name: string
  email?: string | null
  avatar_url?: string
  /** `User` (default) or `Bot`. */
  type?: 'User' | 'Bot'
  tokens?: SeedToken[]
}

export interface SeedOrgMember {
  login: string
  role: 'member' | 'admin'
  state: 'active' | 'pending'
}

export interface SeedOrg {
  login: string
  id: number
  name?: string
  description?: string
  members?: SeedOrgMember[]
}

export interface SeedCollaborator {
  login: string
  permission: RepoPermission
}

export interface SeedRepo {
  owner: string
  name: string
  id?: number
  private: boolean
  description?: string | null
  default_branch?: string
  collaborators?: SeedCollaborator[]
  /** Files of the initial commit on the default branch, path → UTF-8 content. */
  files: Record<string, string>
  /** No commits at all, as a repository created without a README (`files` and `branches` ignored). */
  empty?: boolean
  /** Extra branches created from the default branch, each with optional extra files (one commit each). */
  branches?: Record<string, Record<string, string>>
  /** Post a check run on merge commits of the default branch (see SeedApplyOnMerge). */
  apply_on_merge?: SeedApplyOnMerge
}

export interface SeedOAuthApp {
  client_id: string
  client_secret: string
  callback_url: string
  name: string
  /**
   * Dev-only leniency: also accept any `http://localhost:*` / `http://127.0.0.1:*` redirect_uri whose
   * path is under the callback's path (tests run the API on random ports). Real GitHub does not.
   */
  allow_loopback_redirects?: boolean
}

export interface Seed {
  users: SeedUser[]
  orgs?: SeedOrg[]
  repos?: SeedRepo[]
  oauth?: { apps: SeedOAuthApp[]; defaultLogin?: string }
  /** GitHub Apps with their installations (see SeedGitHubApp). */
  github_apps?: SeedGitHubApp[]
}

/** One request the simulator answered. */
export interface LedgerEntry {
  at: string
  method: string
  path: string
  /** Route template like `GET /repos/{owner}/{repo}`; `UNMATCHED` for unknown routes. */
  route: string
  status: number
  login: string | null
  /** The request carried If-None-Match or If-Modified-Since. */
  conditional: boolean
  /** The request was counted against the REST core rate limit. */
  counted: boolean
  kind: 'api' | 'oauth' | 'git'
}

export type LedgerFilter = Partial<Omit<LedgerEntry, 'at'>>

export interface FaultSpec {
  method?: string
  path?: string | RegExp
  status: number
  /** How many matching requests fail; default 1. `Infinity` for all. */
  times?: number
  /** Seconds, sent as `retry-after`. */
  retryAfter?: number
  message?: string
  /** Extra response headers (e.g. `x-github-sso`); see `refusals.ts` for GitHub's own refusals. */
  headers?: Record<string, string>
}

/** A GitHub App permission level (`metadata` is always at least `read`). */
export type AppPermissionLevel = 'read' | 'write' | 'admin'

/** One installation of a seeded GitHub App on a user or organization account. */
export interface SeedGitHubAppInstallation {
  id: number
  /** Login of the user or organization the App is installed on. */
  account: string
  /** `all` repositories of the account, or the `selected` ones in `repositories`. */
  repository_selection: 'all' | 'selected'
  /** Repository names (of `account`) when `repository_selection` is `selected`. */
  repositories?: string[]
  /** Default: the App's permissions. Never wider than them. */
  permissions?: Record<string, AppPermissionLevel>
  suspended?: boolean
}

/**
 * A GitHub App (https://docs.github.com/apps). Authenticates with RS256 JWTs signed by `private_key`,
 * mints `ghs_` installation tokens, and is also an OAuth client (`client_id`/`client_secret`) whose
 * user tokens are `ghu_` (expiring after 8 hours with a `ghr_` refresh token when `expire_user_tokens`).
 */
export interface SeedGitHubApp {
  id: number
  slug: string
  name: string
  /** Login of the owning user or organization. */
  owner: string
  client_id: string
  client_secret: string
  /** PEM (PKCS#1 or PKCS#8). Dev-only seeds may carry it; otherwise one is generated at start. */
  private_key?: string
  /** PEM public key; derived from `private_key` when absent. */
  public_key?: string
  permissions: Record<string, AppPermissionLevel>
  /** Webhook events the App subscribes to (`installation*` events are always sent). */
  events?: string[]
  /** Where the install page sends people back, with `installation_id` and `setup_action`. */
  setup_url?: string
  /** OAuth callback for sign-in through the App; default `setup_url`'s origin + `/auth/callback`. */
  callback_url?: string
  allow_loopback_redirects?: boolean
  /** User tokens expire after 8 hours and come with refresh tokens; default true (GitHub's default). */
  expire_user_tokens?: boolean
  /** The App's webhook: deliveries for its subscribed events on its installations. */
  webhook?: { url: string; secret?: string; active?: boolean }
  installations?: SeedGitHubAppInstallation[]
}

/**
 * The specs repository's CI stand-in: when a pull request is merged into the default branch, post a
 * check run on the merge commit (created `in_progress`, then completed with `conclusion`).
 */
export interface SeedApplyOnMerge {
  /** Check run name; default `apply`. */
  name?: string
  conclusion: 'success' | 'failure'
  /** Slug of the seeded App that posts it; default the first App installed on the repository. */
  app?: string
  /** Milliseconds between the merge and the completed check run; default 50. */
  delay_ms?: number
}
