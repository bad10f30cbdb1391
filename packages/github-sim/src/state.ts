import { join } from 'node:path'
import { GitRepo } from './git-repo.js'
import type { RepoPermission, Seed, SeedOAuthApp, SeedUser, TokenKind } from './types.js'

export interface TokenRecord {
  token: string
  login: string
  scopes: string[]
  kind: TokenKind
  expiresAt?: string
  revoked?: boolean
}

export interface UserRecord {
  login: string
  id: number
  name: string
  email: string | null
  avatarUrl: string
  type: 'User' | 'Bot'
  createdAt: string
}

export interface OrgRecord {
  login: string
  id: number
  name: string
  description: string | null
  createdAt: string
  members: Map<string, { role: 'member' | 'admin'; state: 'active' | 'pending' }>
}

export interface PullRecord {
  id: number
  number: number
  title: string
  body: string | null
  state: 'open' | 'closed'
  head: { label: string; ref: string; repoKey: string; sha: string }
  base: { ref: string; sha: string }
  userLogin: string
  draft: boolean
  createdAt: string
  updatedAt: string
  closedAt?: string | null
  mergedAt?: string | null
  mergeCommitSha?: string | null
  mergedBy?: string | null
}

export interface RepoRecord {
  owner: string
  name: string
  id: number
  private: boolean
  description: string | null
  defaultBranch: string
  createdAt: string
  pushedAt: string
  updatedAt: string
  collaborators: Map<string, RepoPermission>
  git: GitRepo
  pulls: PullRecord[]
}

const RANK: Record<RepoPermission, number> = { read: 1, write: 2, admin: 3 }

/** Fixed creation time for seeded objects so responses are reproducible. */
export const SEED_TIME = '2024-01-02T03:04:05Z'

/** The simulator's mutable model of users, tokens, orgs and repositories. */
export class World {
  readonly users = new Map<string, UserRecord>()
  readonly tokens = new Map<string, TokenRecord>()
  readonly orgs = new Map<string, OrgRecord>()
  readonly repos = new Map<string, RepoRecord>()
  readonly apps: SeedOAuthApp[]
  readonly defaultLogin: string | null
  #nextId = 10_000_000

  constructor(
    readonly seed: Seed,
    readonly reposRoot: string,
    readonly gitHome: string,
  ) {
    for (const u of seed.users) this.addUser(u)
    for (const o of seed.orgs ?? []) {
      const members = new Map<string, { role: 'member' | 'admin'; state: 'active' | 'pending' }>()
      for (const m of o.members ?? []) members.set(m.login.toLowerCase(), { role: m.role, state: m.state })
      this.orgs.set(o.login.toLowerCase(), {
        login: o.login,
        id: o.id,
        name: o.name ?? o.login,
        description: o.description ?? null,
        createdAt: SEED_TIME,
        members,
      })
    }
    this.apps = seed.oauth?.apps ?? []
    this.defaultLogin = seed.oauth?.defaultLogin ?? seed.users[0]?.login ?? null
  }

  nextId(): number {
    return this.#nextId++
  }

  addUser(u: SeedUser): void {
    this.users.set(u.login.toLowerCase(), {
      login: u.login,
      id: u.id,
      name: u.name,
      email: u.email ?? null,
      avatarUrl: u.avatar_url ?? `https://avatars.githubusercontent.com/u/${u.id}?v=4`,
      type: u.type ?? 'User',
      createdAt: SEED_TIME,
    })
    for (const t of u.tokens ?? []) {
      this.addToken(u.login, t.token, { scopes: t.scopes, kind: t.kind, expiresAt: t.expires_at })
    }
  }

  addToken(
    login: string,
    token: string,
    opts: { scopes?: string[]; kind?: TokenKind; expiresAt?: string } = {},
  ) {
    const user = this.user(login)
    if (!user) throw new Error(`unknown user ${login}`)
    this.tokens.set(token, {
      token,
      login: user.login,
      scopes: opts.scopes ?? ['repo'],
      kind: opts.kind ?? kindOf(token),
      expiresAt: opts.expiresAt,
    })
  }

  user(login: string): UserRecord | undefined {
    return this.users.get(login.toLowerCase())
  }

  org(login: string): OrgRecord | undefined {
    return this.orgs.get(login.toLowerCase())
  }

  repo(owner: string, name: string): RepoRecord | undefined {
    return this.repos.get(`${owner}/${name}`.toLowerCase())
  }

  registerRepo(rec: Omit<RepoRecord, 'git' | 'pulls'>): RepoRecord {
    const git = new GitRepo(join(this.reposRoot, rec.owner, `${rec.name}.git`), this.gitHome)
    const full: RepoRecord = { ...rec, git, pulls: [] }
    this.repos.set(`${rec.owner}/${rec.name}`.toLowerCase(), full)
    return full
  }

  /** Effective permission of `login` (null = anonymous) on a repo, ignoring token scopes. */
  permission(repo: RepoRecord, login: string | null): RepoPermission | null {
    let best: RepoPermission | null = repo.private ? null : 'read'
    const raise = (p: RepoPermission) => {
      if (!best || RANK[p] > RANK[best]) best = p
    }
    if (!login) return best
    const key = login.toLowerCase()
    if (repo.owner.toLowerCase() === key) raise('admin')
    const org = this.org(repo.owner)
    const membership = org?.members.get(key)
    if (membership?.state === 'active') raise(membership.role === 'admin' ? 'admin' : 'read')
    const collab = repo.collaborators.get(key)
    if (collab) raise(collab)
    return best
  }
}

/** True when `granted` is at least `needed`. */
export function atLeast(granted: RepoPermission | null, needed: RepoPermission): boolean {
  return granted !== null && RANK[granted] >= RANK[needed]
}

function kindOf(token: string): TokenKind {
  if (token.startsWith('gho_')) return 'oauth'
  if (token.startsWith('github_pat_')) return 'fine-grained'
  if (token.startsWith('ghs_') || token.startsWith('ghu_')) return 'app'
  return 'classic'
}
