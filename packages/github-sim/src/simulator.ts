import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { ApiRouter, installApiHooks } from './api.js'
import { registerApplicationRoutes } from './applications.routes.js'
import { type AppControls, appControls } from './apps.controls.js'
import { registerAppRoutes } from './apps.routes.js'
import { registerChecksRoutes } from './checks.routes.js'
import type { SimContext } from './context.js'
import { registerGitDataRoutes } from './git-data.routes.js'
import { registerGitHttpRoutes } from './git-http.routes.js'
import { GitHubApps } from './github-apps.js'
import { registerHookRoutes, seedAppHooks } from './hooks.routes.js'
import { Ledger } from './ledger.js'
import { parseForm, registerOAuthRoutes } from './oauth.routes.js'
import { registerPullMergeRoutes } from './pull-merge.routes.js'
import { registerPullRoutes } from './pulls.routes.js'
import { registerRenameRoutes, renameRepository } from './renames.js'
import { materializeRepos } from './repo-store.js'
import { registerRepoRoutes } from './repos.routes.js'
import { defaultSeed, loadSeedFile, validateSeed } from './seed.js'
import { World } from './state.js'
import type { FaultSpec, RepoPermission, Seed, TokenKind } from './types.js'
import { registerUserRoutes } from './users.routes.js'
import { WebhookDeliveries } from './webhook-deliveries.js'
import { createEvents } from './webhook-events.js'

export interface SimulatorOptions {
  /** Seed object, or path to a `.json`/`.yaml` seed file; default: the bundled default seed. */
  seed?: Seed | string
  /** Default 0 (random free port). */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** Where bare repositories live; default a fresh temp dir removed on close. */
  dataDir?: string
  /** The OAuth authorize page approves at once (headless); default true. */
  autoApprove?: boolean
  /** Fastify logger option; default false. */
  logger?: boolean | object
}

export interface Simulator extends AppControls {
  /** Web base URL (GITHUB_URL): OAuth pages and git over HTTP. */
  url: string
  /** REST base URL (GITHUB_API_URL) = `url + '/api/v3'`. */
  apiUrl: string
  ledger: Ledger
  /** The resolved seed (do not mutate). */
  seed: Readonly<Seed>
  /** Warning lines (unsimulated routes, internal errors), also written to the logger or stderr. */
  warnings: string[]
  close(): Promise<void>
  revokeToken(token: string): void
  addToken(
    login: string,
    token: string,
    opts?: { scopes?: string[]; kind?: TokenKind; expiresAt?: string },
  ): void
  /** Core rate limit for authenticated callers (per user); resets every bucket. */
  setRateLimit(limit: number, opts?: { remaining?: number; resetAt?: Date; anonymous?: boolean }): void
  injectFault(f: FaultSpec): void
  setLatency(ms: number): void
  setOrgMembership(
    org: string,
    login: string,
    state: 'active' | 'pending' | null,
    role?: 'member' | 'admin',
  ): void
  setRepoVisibility(owner: string, repo: string, visibility: 'public' | 'private'): void
  addCollaborator(owner: string, repo: string, login: string, permission: RepoPermission | null): void
  truncateTrees(on: boolean): void
  /** Renames or transfers `owner/name` to `owner/name` with GitHub's redirects from the old name (renames.ts). */
  renameRepo(from: string, to: string): Promise<void>
}

/** Starts a local GitHub (Enterprise Server style) seeded from `opts.seed`. */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const seed =
    opts.seed === undefined
      ? defaultSeed
      : typeof opts.seed === 'string'
        ? loadSeedFile(opts.seed)
        : validateSeed(opts.seed)
  const ownsDataDir = !opts.dataDir
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'github-sim-')))
  const reposRoot = join(dataDir, 'repos')
  const home = dataDir
  // A dataDir reused across runs is rebuilt from the seed so the API and disk always agree.
  await rm(reposRoot, { recursive: true, force: true })

  const world = new World(seed, reposRoot, home)
  await materializeRepos(world, seed.repos ?? [])

  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 100 * 1024 * 1024,
    routerOptions: { ignoreTrailingSlash: true },
  })
  const warnings: string[] = []
  const ctx: SimContext = {
    world,
    ledger: new Ledger(),
    urls: { web: '', api: '' },
    autoApprove: opts.autoApprove ?? true,
    latencyMs: 0,
    truncateTrees: false,
    faults: [],
    buckets: new Map(),
    rateDefaults: { limit: 5000 },
    anonymousLimit: 60,
    warnings,
    warn(msg) {
      warnings.push(msg)
      if (opts.logger) app.log.warn(msg)
      else process.stderr.write(`[github-sim] WARN ${msg}\n`)
    },
    apps: new GitHubApps(world, seed.github_apps ?? []),
    hooks: undefined as unknown as WebhookDeliveries,
    events: undefined as unknown as SimContext['events'],
  }
  ctx.hooks = new WebhookDeliveries(ctx)
  ctx.events = createEvents(ctx, ctx.hooks)
  const applyOnMerge = seedAppHooks(ctx, seed)

  app.removeContentTypeParser('application/json')
  const parseJson = (body: string) => (body.trim() ? JSON.parse(body) : undefined)
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJson(body as string))
    } catch (err) {
      ;(err as { statusCode?: number }).statusCode = 400
      done(err as Error, undefined)
    }
  })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (req, body, done) =>
    done(null, parseForm(req, body as string)),
  )
  // GitHub reads request bodies as JSON whatever the content type says.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJson(body as string))
    } catch {
      done(null, body)
    }
  })

  installApiHooks(app, ctx)
  const api = new ApiRouter(app)
  registerRenameRoutes(app, api, ctx)
  registerUserRoutes(api, ctx)
  registerRepoRoutes(api, ctx)
  registerGitDataRoutes(api, ctx)
  registerPullRoutes(api, ctx)
  registerPullMergeRoutes(api, ctx)
  registerAppRoutes(api, app, ctx)
  registerHookRoutes(api, ctx)
  registerChecksRoutes(api, ctx, applyOnMerge)
  registerOAuthRoutes(app, ctx)
  registerApplicationRoutes(app, ctx)
  registerGitHttpRoutes(app, ctx, reposRoot, home)

  await app.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr ? addr.port : opts.port
  const host = opts.host ?? '127.0.0.1'
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  ctx.urls.web = url
  ctx.urls.api = `${url}/api/v3`

  let closed = false
  return {
    url,
    apiUrl: ctx.urls.api,
    ledger: ctx.ledger,
    seed,
    warnings,
    ...appControls(ctx, applyOnMerge),
    async close() {
      if (closed) return
      closed = true
      await ctx.hooks.settled()
      await app.close()
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true })
    },
    revokeToken(token) {
      const rec = world.tokens.get(token)
      if (rec) rec.revoked = true
    },
    addToken(login, token, o = {}) {
      world.addToken(login, token, o)
    },
    setRateLimit(limit, o = {}) {
      if (o.anonymous) ctx.anonymousLimit = limit
      else ctx.rateDefaults = { limit, remaining: o.remaining, resetAt: o.resetAt }
      ctx.buckets.clear()
    },
    injectFault(f) {
      ctx.faults.push({ ...f, remaining: f.times ?? 1 })
    },
    setLatency(ms) {
      ctx.latencyMs = ms
    },
    setOrgMembership(orgLogin, login, state, role = 'member') {
      const org = world.org(orgLogin)
      if (!org) throw new Error(`unknown org ${orgLogin}`)
      if (!world.user(login)) throw new Error(`unknown user ${login}`)
      if (state === null) org.members.delete(login.toLowerCase())
      else org.members.set(login.toLowerCase(), { state, role })
    },
    setRepoVisibility(owner, name, visibility) {
      const repo = world.repo(owner, name)
      if (!repo) throw new Error(`unknown repo ${owner}/${name}`)
      repo.private = visibility === 'private'
    },
    addCollaborator(owner, name, login, permission) {
      const repo = world.repo(owner, name)
      if (!repo) throw new Error(`unknown repo ${owner}/${name}`)
      if (permission === null) repo.collaborators.delete(login.toLowerCase())
      else repo.collaborators.set(login.toLowerCase(), permission)
    },
    truncateTrees(on) {
      ctx.truncateTrees = on
    },
    renameRepo(from, to) {
      return renameRepository(ctx, from, to)
    },
  }
}
