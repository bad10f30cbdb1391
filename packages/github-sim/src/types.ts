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
