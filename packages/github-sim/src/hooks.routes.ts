import type { FastifyRequest } from 'fastify'
import { bodyOf, paginate, repoFor } from './access.js'
import type { ApiRouter } from './api.js'
import { requireAppJwt } from './apps.routes.js'
import { ApiError, notFound, type SimContext, validationFailed } from './context.js'
import type { RepoRecord } from './state.js'
import type { Seed, SeedApplyOnMerge } from './types.js'
import type { DeliveryRecord, HookRecord } from './webhook-deliveries.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const DOCS = 'https://docs.github.com/rest/repos/webhooks'
const DELIVERY_DOCS = 'https://docs.github.com/rest/repos/webhooks#get-a-delivery-for-a-repository-webhook'
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')

/** Creates the seeded Apps' webhooks; returns the repositories' "apply on merge" settings by repo id. */
export function seedAppHooks(ctx: SimContext, seed: Seed): Map<number, SeedApplyOnMerge> {
  for (const app of ctx.apps.apps.values()) {
    const w = app.seed.webhook
    if (!w) continue
    const id = ctx.hooks.nextHookId()
    ctx.hooks.hooks.set(id, {
      id,
      type: 'App',
      appId: app.id,
      name: 'web',
      active: w.active ?? true,
      events: app.events,
      config: { url: w.url, content_type: 'json', secret: w.secret, insecure_ssl: '0' },
      createdAt: app.createdAt,
      updatedAt: app.createdAt,
      lastResponse: { code: null, status: 'unused', message: null },
    })
  }
  const apply = new Map<number, SeedApplyOnMerge>()
  for (const r of seed.repos ?? []) {
    const rec = ctx.world.repo(r.owner, r.name)
    if (rec && r.apply_on_merge) apply.set(rec.id, r.apply_on_merge)
  }
  return apply
}

/** GitHub's `hook` object (the secret is masked, as on GitHub). */
export function hookJson(ctx: SimContext, repo: RepoRecord, h: HookRecord) {
  const api = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/hooks/${h.id}`
  return {
    type: h.type,
    id: h.id,
    name: h.name,
    active: h.active,
    events: h.events,
    config: {
      content_type: h.config.content_type,
      insecure_ssl: h.config.insecure_ssl,
      url: h.config.url,
      ...(h.config.secret ? { secret: '********' } : {}),
    },
    updated_at: h.updatedAt,
    created_at: h.createdAt,
    url: api,
    test_url: `${api}/test`,
    ping_url: `${api}/pings`,
    deliveries_url: `${api}/deliveries`,
    last_response: h.lastResponse,
  }
}

function deliveryItem(d: DeliveryRecord) {
  return {
    id: d.id,
    guid: d.guid,
    delivered_at: d.deliveredAt,
    redelivery: d.redelivery,
    duration: d.duration,
    status: d.status,
    status_code: d.statusCode,
    event: d.event,
    action: d.action,
    installation_id: d.installationId,
    repository_id: d.repositoryId,
    throttled_at: null,
  }
}

function deliveryFull(d: DeliveryRecord, url?: string) {
  return {
    ...deliveryItem(d),
    ...(url ? { url } : {}),
    request: { headers: d.request.headers, payload: d.request.payload },
    response: { headers: d.response.headers, payload: d.response.payload },
  }
}

const hookInvalid = (message: string) =>
  validationFailed('Validation Failed', `${DOCS}#create-a-repository-webhook`, [
    { resource: 'Hook', code: 'custom', message },
  ])

function parseConfig(raw: unknown, previous?: HookRecord['config']): HookRecord['config'] {
  const c = (raw && typeof raw === 'object' && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>
  const url = c.url ?? previous?.url
  if (typeof url !== 'string' || !url) throw hookInvalid('Config must contain URL for webhooks')
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw hookInvalid('Config url is not supported')
  const contentType = c.content_type ?? previous?.content_type ?? 'form'
  if (contentType !== 'json' && contentType !== 'form')
    throw hookInvalid('Config content_type is not supported')
  const secret = c.secret === undefined ? previous?.secret : c.secret === null ? undefined : String(c.secret)
  const insecure = String(c.insecure_ssl ?? previous?.insecure_ssl ?? '0')
  return {
    url,
    content_type: contentType,
    secret: secret || undefined,
    insecure_ssl: insecure === '1' ? '1' : '0',
  }
}

function parseEvents(raw: unknown, fallback: string[]): string[] {
  if (raw === undefined) return fallback
  if (!Array.isArray(raw) || !raw.every((e) => typeof e === 'string'))
    throw hookInvalid('Events must be an array of strings')
  return [...new Set(raw as string[])]
}

/**
 * Repository webhooks (https://docs.github.com/rest/repos/webhooks): CRUD (admin only, else 404),
 * ping, delivery log and redelivery; and the App webhook's delivery log (JWT).
 */
export function registerHookRoutes(api: ApiRouter, ctx: SimContext): void {
  const { hooks } = ctx
  const admin = (req: FastifyRequest) =>
    repoFor(ctx, req, params(req).owner!, params(req).repo!, 'admin').repo
  const hookOf = (req: FastifyRequest, repo: RepoRecord) => {
    const h = hooks.hooks.get(Number(params(req).hook_id))
    if (h?.type !== 'Repository' || h.repoId !== repo.id) throw notFound(`${DOCS}#get-a-repository-webhook`)
    return h
  }
  const ping = (repo: RepoRecord, h: HookRecord, senderLogin: string | null) => {
    const sender = senderLogin ? ctx.world.user(senderLogin) : undefined
    hooks.deliver(h, 'ping', {
      zen: 'Keep it logically awesome.',
      hook_id: h.id,
      hook: hookJson(ctx, repo, h),
      repository: {
        id: repo.id,
        name: repo.name,
        full_name: `${repo.owner}/${repo.name}`,
        private: repo.private,
      },
      ...(sender ? { sender: { login: sender.login, id: sender.id, type: sender.type } } : {}),
    })
  }

  api.get(
    '/repos/{owner}/{repo}/hooks',
    async (req, reply) => {
      const repo = admin(req)
      return paginate(req, reply, hooks.repoHooks(repo.id)).map((h) => hookJson(ctx, repo, h))
    },
    { scopes: 'admin:repo_hook, read:repo_hook, repo, write:repo_hook' },
  )

  api.post(
    '/repos/{owner}/{repo}/hooks',
    async (req, reply) => {
      const repo = admin(req)
      const body = bodyOf(req)
      if (body.name !== undefined && body.name !== 'web') throw hookInvalid(`Name must be "web"`)
      const config = parseConfig(body.config)
      if (hooks.repoHooks(repo.id).some((h) => h.config.url === config.url))
        throw hookInvalid('Hook already exists on this repository')
      const id = hooks.nextHookId()
      const at = now()
      const h: HookRecord = {
        id,
        type: 'Repository',
        repoId: repo.id,
        name: 'web',
        active: body.active === undefined ? true : body.active === true,
        events: parseEvents(body.events, ['push']),
        config,
        createdAt: at,
        updatedAt: at,
        lastResponse: { code: null, status: 'unused', message: null },
      }
      hooks.hooks.set(id, h)
      if (h.active) ping(repo, h, req.sim.login)
      reply.code(201).header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/hooks/${id}`)
      return hookJson(ctx, repo, h)
    },
    { scopes: 'admin:repo_hook, repo, write:repo_hook' },
  )

  api.get(
    '/repos/{owner}/{repo}/hooks/{hook_id}',
    async (req) => {
      const repo = admin(req)
      return hookJson(ctx, repo, hookOf(req, repo))
    },
    { scopes: 'admin:repo_hook, read:repo_hook, repo, write:repo_hook' },
  )

  api.patch(
    '/repos/{owner}/{repo}/hooks/{hook_id}',
    async (req) => {
      const repo = admin(req)
      const h = hookOf(req, repo)
      const body = bodyOf(req)
      const config = body.config === undefined ? h.config : parseConfig(body.config, h.config)
      let events = parseEvents(body.events, h.events)
      events = [...new Set([...events, ...parseEvents(body.add_events, [])])]
      const remove = new Set(parseEvents(body.remove_events, []))
      events = events.filter((e) => !remove.has(e))
      if (body.active !== undefined && typeof body.active !== 'boolean')
        throw hookInvalid('Active must be a boolean')
      h.config = config
      h.events = events
      if (typeof body.active === 'boolean') h.active = body.active
      h.updatedAt = now()
      return hookJson(ctx, repo, h)
    },
    { scopes: 'admin:repo_hook, repo, write:repo_hook' },
  )

  api.delete(
    '/repos/{owner}/{repo}/hooks/{hook_id}',
    async (req, reply) => {
      const repo = admin(req)
      hooks.hooks.delete(hookOf(req, repo).id)
      return reply.code(204).send()
    },
    { scopes: 'admin:repo_hook, repo' },
  )

  api.post(
    '/repos/{owner}/{repo}/hooks/{hook_id}/pings',
    async (req, reply) => {
      const repo = admin(req)
      ping(repo, hookOf(req, repo), req.sim.login)
      return reply.code(204).send()
    },
    { scopes: 'admin:repo_hook, repo, write:repo_hook' },
  )

  const deliveriesOf = (hookId: number) => hooks.log.filter((d) => d.hookId === hookId).reverse()
  const deliveryOf = (req: FastifyRequest, hookId: number) => {
    const d = hooks.log.find((x) => x.hookId === hookId && String(x.id) === params(req).delivery_id)
    if (!d) throw notFound(DELIVERY_DOCS)
    return d
  }

  api.get(
    '/repos/{owner}/{repo}/hooks/{hook_id}/deliveries',
    async (req, reply) => {
      const repo = admin(req)
      return paginate(req, reply, deliveriesOf(hookOf(req, repo).id)).map(deliveryItem)
    },
    { scopes: 'admin:repo_hook, read:repo_hook, repo, write:repo_hook' },
  )

  api.get(
    '/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}',
    async (req) => {
      const repo = admin(req)
      const h = hookOf(req, repo)
      const d = deliveryOf(req, h.id)
      return deliveryFull(
        d,
        `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/hooks/${h.id}/deliveries/${d.id}`,
      )
    },
    { scopes: 'admin:repo_hook, read:repo_hook, repo, write:repo_hook' },
  )

  api.post(
    '/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts',
    async (req, reply) => {
      const repo = admin(req)
      const d = deliveryOf(req, hookOf(req, repo).id)
      hooks.redeliver(d)
      return reply.code(202).send({})
    },
    { scopes: 'admin:repo_hook, repo, write:repo_hook' },
  )

  const appHook = (req: FastifyRequest) => {
    const app = requireAppJwt(req)
    const h = hooks.appHook(app.id)
    if (!h)
      throw new ApiError(404, 'Not Found', {
        documentation_url: 'https://docs.github.com/rest/apps/webhooks#list-deliveries-for-an-app-webhook',
      })
    return h
  }
  api.get('/app/hook/deliveries', async (req, reply) =>
    paginate(req, reply, deliveriesOf(appHook(req).id)).map(deliveryItem),
  )
  api.get('/app/hook/deliveries/{delivery_id}', async (req) => deliveryFull(deliveryOf(req, appHook(req).id)))
  api.post('/app/hook/deliveries/{delivery_id}/attempts', async (req, reply) => {
    hooks.redeliver(deliveryOf(req, appHook(req).id))
    return reply.code(202).send({})
  })
}
