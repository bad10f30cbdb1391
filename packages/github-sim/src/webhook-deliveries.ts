import { createHmac, randomUUID } from 'node:crypto'
import type { SimContext } from './context.js'

/** A webhook: a repository's (`Repository`) or a GitHub App's (`App`, from the seed). */
export interface HookRecord {
  id: number
  type: 'Repository' | 'App'
  /** Repository hooks: the repository id (follows renames and transfers). */
  repoId?: number
  /** App hooks: the App id. */
  appId?: number
  name: 'web'
  active: boolean
  /** Event names, or `*` for all. App hooks use the App's subscribed events. */
  events: string[]
  config: { url: string; content_type: 'json' | 'form'; secret?: string; insecure_ssl: '0' | '1' }
  createdAt: string
  updatedAt: string
  lastResponse: { code: number | null; status: string; message: string | null }
}

/** One delivery attempt, as GitHub's delivery log shows it. */
export interface DeliveryRecord {
  /** Numeric id of this attempt (`…/deliveries/{delivery_id}`). */
  id: number
  /** `X-GitHub-Delivery`; a redelivery keeps the original's. */
  guid: string
  hookId: number
  deliveredAt: string
  redelivery: boolean
  /** Seconds. */
  duration: number
  /** `OK`, `Invalid HTTP Response: 500`, or the network error. */
  status: string
  /** 0 when no HTTP answer came back. */
  statusCode: number
  event: string
  action: string | null
  installationId: number | null
  repositoryId: number | null
  request: { headers: Record<string, string>; payload: Record<string, unknown> }
  response: { headers: Record<string, string>; payload: string | null }
}

/** GitHub gives a receiver 10 seconds to answer. */
const DELIVERY_TIMEOUT_MS = 10_000

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')

/**
 * Sends webhook deliveries like GitHub: a JSON (or form) POST with `X-GitHub-Event`,
 * `X-GitHub-Delivery`, `X-GitHub-Hook-ID`, `X-GitHub-Hook-Installation-Target-*` and, with a secret,
 * `X-Hub-Signature-256` (HMAC-SHA256 of the body) and `X-Hub-Signature` (SHA-1). Deliveries are
 * asynchronous (the API answers first); `settled()` waits for every one in flight.
 */
export class WebhookDeliveries {
  readonly hooks = new Map<number, HookRecord>()
  readonly log: DeliveryRecord[] = []
  readonly #pending = new Set<Promise<unknown>>()
  #nextHook = 400_000_000
  #nextDelivery = 90_000_000_000

  constructor(private readonly ctx: SimContext) {}

  nextHookId(): number {
    return this.#nextHook++
  }

  /** Hooks of a repository, oldest first. */
  repoHooks(repoId: number): HookRecord[] {
    return [...this.hooks.values()].filter((h) => h.type === 'Repository' && h.repoId === repoId)
  }

  appHook(appId: number): HookRecord | undefined {
    return [...this.hooks.values()].find((h) => h.type === 'App' && h.appId === appId)
  }

  /** Queues a delivery of `payload` to `hook`; `guid` is reused for redeliveries. */
  deliver(
    hook: HookRecord,
    event: string,
    payload: Record<string, unknown>,
    opts: { guid?: string; redelivery?: boolean } = {},
  ): DeliveryRecord {
    const guid = opts.guid ?? randomUUID()
    const json = JSON.stringify(payload)
    const body =
      hook.config.content_type === 'form' ? new URLSearchParams({ payload: json }).toString() : json
    const headers: Record<string, string> = {
      accept: '*/*',
      'content-type':
        hook.config.content_type === 'form' ? 'application/x-www-form-urlencoded' : 'application/json',
      'user-agent': 'GitHub-Hookshot/github-sim',
      'x-github-delivery': guid,
      'x-github-event': event,
      'x-github-hook-id': String(hook.id),
      'x-github-hook-installation-target-id': String(hook.type === 'App' ? hook.appId : hook.repoId),
      'x-github-hook-installation-target-type': hook.type === 'App' ? 'integration' : 'repository',
    }
    if (hook.config.secret) {
      headers['x-hub-signature'] = `sha1=${createHmac('sha1', hook.config.secret).update(body).digest('hex')}`
      headers['x-hub-signature-256'] =
        `sha256=${createHmac('sha256', hook.config.secret).update(body).digest('hex')}`
    }
    const installation = payload.installation as { id?: number } | undefined
    const repository = payload.repository as { id?: number } | undefined
    const rec: DeliveryRecord = {
      id: this.#nextDelivery++,
      guid,
      hookId: hook.id,
      deliveredAt: now(),
      redelivery: opts.redelivery ?? false,
      duration: 0,
      status: 'Pending',
      statusCode: 0,
      event,
      action: typeof payload.action === 'string' ? payload.action : null,
      installationId: installation?.id ?? null,
      repositoryId: repository?.id ?? null,
      request: { headers, payload },
      response: { headers: {}, payload: null },
    }
    this.log.push(rec)
    const started = Date.now()
    const send = (async () => {
      try {
        const res = await fetch(hook.config.url, {
          method: 'POST',
          headers,
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
        })
        rec.statusCode = res.status
        rec.status = res.ok ? 'OK' : `Invalid HTTP Response: ${res.status}`
        rec.response = {
          headers: Object.fromEntries(res.headers),
          payload: (await res.text()).slice(0, 1024 * 1024),
        }
      } catch (err) {
        const e = err as Error
        rec.status = e.name === 'TimeoutError' ? 'timed out' : `failed to connect to host: ${e.message}`
      }
      rec.duration = (Date.now() - started) / 1000
      hook.lastResponse = {
        code: rec.statusCode || null,
        status: rec.statusCode >= 200 && rec.statusCode < 300 ? 'active' : 'misconfigured',
        message: rec.status,
      }
    })()
    this.#pending.add(send)
    void send.finally(() => this.#pending.delete(send))
    return rec
  }

  /** Redelivers a logged delivery with the same `X-GitHub-Delivery` and payload. */
  redeliver(original: DeliveryRecord): DeliveryRecord | null {
    const hook = this.hooks.get(original.hookId)
    if (!hook) return null
    return this.deliver(hook, original.event, original.request.payload, {
      guid: original.guid,
      redelivery: true,
    })
  }

  /** Resolves when every delivery in flight (and any started meanwhile) has been answered. */
  async settled(): Promise<void> {
    while (this.#pending.size) await Promise.allSettled([...this.#pending])
  }

  /** Tracks async work that will queue deliveries (payloads that need git reads). */
  track(p: Promise<unknown>): void {
    const wrapped = p.catch((err: Error) => this.ctx.warn(`webhook payload failed: ${err.message}`))
    this.#pending.add(wrapped)
    void wrapped.finally(() => this.#pending.delete(wrapped))
  }
}
