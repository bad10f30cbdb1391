import { removeInstallation } from './apps.routes.js'
import type { SimContext } from './context.js'
import type { SeedApplyOnMerge } from './types.js'
import type { DeliveryRecord } from './webhook-deliveries.js'

/** What a test needs to act as a GitHub App: ids, OAuth client credentials and the private key. */
export interface GitHubAppInfo {
  id: number
  slug: string
  clientId: string
  clientSecret: string
  /** PEM; the seed's, or the one generated at start. */
  privateKey: string
  /** The App's bot user, the actor of its installation tokens. */
  botLogin: string
  installations: { id: number; account: string; repositorySelection: 'all' | 'selected' }[]
}

/** Test controls for GitHub Apps, webhooks and checks (merged into `Simulator`). */
export interface AppControls {
  /** The seeded App `slug` (throws if unknown). */
  githubApp(slug: string): GitHubAppInfo
  /**
   * Installs App `slug` on `account` (all repositories, or the named ones) and sends
   * `installation.created` to the App's webhook. Returns the installation id.
   */
  installApp(slug: string, account: string, repositories?: string[], senderLogin?: string): number
  /** Uninstalls: revokes its tokens and sends `installation.deleted`. */
  uninstallApp(installationId: number, senderLogin?: string): void
  /** Suspends (tokens revoked, minting answers 403) or unsuspends; sends `installation.suspend|unsuspend`. */
  suspendInstallation(installationId: number, suspended: boolean, senderLogin?: string): void
  /**
   * Changes a `selected` installation's repositories (names of its account's repositories) and sends
   * `installation_repositories.added/removed`. Tokens minted before lose the removed repositories.
   */
  setInstallationRepositories(installationId: number, repositories: string[], senderLogin?: string): void
  /**
   * `login` revokes App `slug`'s authorization (GitHub settings → Applications): its user and
   * refresh tokens stop working and `github_app_authorization.revoked` goes to the App's webhook.
   */
  revokeAppAuthorization(slug: string, login: string): void
  /** Makes a token expire now (App user tokens, installation tokens, PATs with an expiry). */
  expireToken(token: string): void
  /**
   * Test control (no GitHub counterpart): every installation token minted for `installationId`,
   * oldest first, so a test can expire one mid-job or scan for it where it must never appear.
   */
  installationTokens(installationId: number): string[]
  /** Every delivery attempt so far, oldest first; filter by event, action, hook id or delivery guid. */
  webhookDeliveries(filter?: {
    event?: string
    action?: string
    hookId?: number
    guid?: string
  }): DeliveryRecord[]
  /** Resolves when every webhook delivery in flight has been answered (or has failed). */
  webhooksSettled(): Promise<void>
  /**
   * Sends a `repository` event (`renamed`, `transferred`, `deleted`, …) for `owner/repo` as it is now;
   * for renames and transfers call it after the change, with GitHub's `changes` object.
   */
  emitRepositoryEvent(
    owner: string,
    repo: string,
    action: string,
    changes?: Record<string, unknown>,
    senderLogin?: string,
  ): void
  /** Sets (or clears with null) the repository's "apply on merge" check run (see SeedApplyOnMerge). */
  setApplyOnMerge(owner: string, repo: string, apply: SeedApplyOnMerge | null): void
}

export function appControls(ctx: SimContext, applyOnMerge: Map<number, SeedApplyOnMerge>): AppControls {
  const { world, apps } = ctx
  const inst = (id: number) => {
    const i = apps.installations.get(id)
    if (!i) throw new Error(`unknown installation ${id}`)
    return i
  }
  const repoOf = (owner: string, name: string) => {
    const r = world.repo(owner, name)
    if (!r) throw new Error(`unknown repo ${owner}/${name}`)
    return r
  }
  const sender = (login?: string) => login ?? world.defaultLogin
  return {
    githubApp(slug) {
      const app = apps.bySlug(slug)
      if (!app) throw new Error(`unknown GitHub App ${slug}`)
      if (!app.privateKeyPem) throw new Error(`GitHub App ${slug} was seeded with a public key only`)
      return {
        id: app.id,
        slug: app.slug,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        privateKey: app.privateKeyPem,
        botLogin: app.botLogin,
        installations: apps.installationsOf(app.id).map((i) => ({
          id: i.id,
          account: i.account,
          repositorySelection: i.repositorySelection,
        })),
      }
    },
    installApp(slug, account, repositories, senderLogin) {
      const app = apps.bySlug(slug)
      if (!app) throw new Error(`unknown GitHub App ${slug}`)
      if (apps.installationOn(app.id, account)) throw new Error(`${slug} is already installed on ${account}`)
      const i = apps.addInstallation(app, {
        account,
        repository_selection: repositories ? 'selected' : 'all',
        repositories,
      })
      i.createdAt = i.updatedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
      ctx.events.installation(i, 'created', sender(senderLogin))
      return i.id
    },
    uninstallApp(id, senderLogin) {
      inst(id)
      removeInstallation(ctx, id, sender(senderLogin))
    },
    revokeAppAuthorization(slug, login) {
      const app = apps.bySlug(slug)
      if (!app) throw new Error(`unknown GitHub App ${slug}`)
      apps.revokeUserAuthorization(app.id, login)
      ctx.events.appAuthorizationRevoked(app.id, login)
    },
    suspendInstallation(id, suspended, senderLogin) {
      const i = inst(id)
      i.suspendedAt = suspended ? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') : null
      if (suspended) apps.revokeInstallationTokens(id)
      ctx.events.installation(i, suspended ? 'suspend' : 'unsuspend', sender(senderLogin))
    },
    setInstallationRepositories(id, names, senderLogin) {
      const i = inst(id)
      const next = new Set(names.map((n) => repoOf(i.account, n).id))
      const before = new Set(apps.repositoriesOf(i).map((r) => r.id))
      i.repositorySelection = 'selected'
      i.repositoryIds = next
      const added = [...next].filter((x) => !before.has(x))
      const removed = [...before].filter((x) => !next.has(x))
      if (added.length) ctx.events.installationRepositories(i, 'added', added, [], sender(senderLogin))
      if (removed.length) ctx.events.installationRepositories(i, 'removed', [], removed, sender(senderLogin))
    },
    installationTokens(id) {
      return [...apps.grants].filter(([, g]) => g.installationId === id).map(([token]) => token)
    },
    expireToken(token) {
      const rec = world.tokens.get(token)
      if (rec) rec.expiresAt = new Date(Date.now() - 1000).toISOString()
    },
    webhookDeliveries(filter = {}) {
      return ctx.hooks.log.filter(
        (d) =>
          (filter.event === undefined || d.event === filter.event) &&
          (filter.action === undefined || d.action === filter.action) &&
          (filter.hookId === undefined || d.hookId === filter.hookId) &&
          (filter.guid === undefined || d.guid === filter.guid),
      )
    },
    webhooksSettled() {
      return ctx.hooks.settled()
    },
    emitRepositoryEvent(owner, name, action, changes, senderLogin) {
      ctx.events.repository(repoOf(owner, name), action, changes, sender(senderLogin))
    },
    setApplyOnMerge(owner, name, apply) {
      const r = repoOf(owner, name)
      if (apply) applyOnMerge.set(r.id, apply)
      else applyOnMerge.delete(r.id)
    },
  }
}
