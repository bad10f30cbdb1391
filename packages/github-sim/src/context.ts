import type { GitHubApps } from './github-apps.js'
import type { Ledger } from './ledger.js'
import type { RepoRecord, TokenRecord, World } from './state.js'
import type { FaultSpec } from './types.js'
import type { Urls } from './views.js'
import type { WebhookDeliveries } from './webhook-deliveries.js'
import type { SimEvents } from './webhook-events.js'

export interface Bucket {
  limit: number
  remaining: number
  /** Epoch seconds. */
  reset: number
}

/** Shared mutable state of one running simulator, handed to every route module. */
export interface SimContext {
  world: World
  ledger: Ledger
  urls: Urls
  autoApprove: boolean
  latencyMs: number
  truncateTrees: boolean
  faults: (FaultSpec & { remaining: number })[]
  buckets: Map<string, Bucket>
  rateDefaults: { limit: number; remaining?: number; resetAt?: Date }
  anonymousLimit: number
  warnings: string[]
  warn(msg: string): void
  /** GitHub Apps, installations and App token grants. */
  apps: GitHubApps
  /** Webhooks and their delivery log. */
  hooks: WebhookDeliveries
  /** Sends GitHub's webhook events (see webhook-events.ts). */
  events: SimEvents
  /** Called after a pull request is merged (the "apply on merge" check run hooks in here). */
  afterMerge?: (repo: RepoRecord, mergeCommitSha: string) => void
}

/** Per-request facts gathered by the hooks and read by handlers and the ledger. */
export interface RequestState {
  kind: 'api' | 'oauth' | 'git'
  route: string
  login: string | null
  token: TokenRecord | null
  counted: boolean
  conditional: boolean
  bucketKey: string | null
}

/** A GitHub-style error: `{ message, documentation_url, status }` with the given HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

export const DOCS = 'https://docs.github.com/rest'

export const notFound = (doc = DOCS) => new ApiError(404, 'Not Found', { documentation_url: doc })

/** GitHub's 422 Validation Failed shape. */
export function validationFailed(message: string, doc: string, errors?: unknown[]): ApiError {
  return new ApiError(422, message, { documentation_url: doc, ...(errors ? { errors } : {}) })
}
