import { retry } from '@octokit/plugin-retry'
import { throttling } from '@octokit/plugin-throttling'
import { Octokit as RestOctokit } from '@octokit/rest'
import { githubRateLimitRemaining, githubRequests } from './metrics.js'
import { classifyToken } from './tokens.js'

/** The Octokit instance type handed out by {@link createOctokit} (REST methods, throttling, retry). */
export type Octokit = RestOctokit

// Annotated: the plugins add no methods callers use, and the inferred type is not portable.
const PorticoOctokit: typeof RestOctokit = RestOctokit.plugin(throttling, retry)

/** The GitHub identity a request or job acts as. */
export interface GithubActor {
  octokit: Octokit
  /** The raw token; never log it, put it in a URL, job data or a response. */
  token: string
  /** `user`: the signed-in user's OAuth token; `service`: GH_TOKEN or the GitHub App's installation. */
  source: 'user' | 'service'
  /** GitHub login of the signed-in user (null for the service token). */
  login: string | null
  /** Portico user id (null for the service token). */
  userId: string | null
}

/** Options for {@link createOctokit}. */
export interface CreateOctokitOptions {
  /** Token sent as `Authorization: token …`; anonymous when absent. */
  token?: string
  /** REST base URL (`GITHUB_API_URL`). */
  baseUrl: string
  userAgent?: string
  /** Retries of 5xx/network failures, and of rate-limited answers (default 2). */
  retries?: number
  /** Backoff unit of retries: attempt n waits n² × this (default 1000 ms). */
  retryBaseMs?: number
  /** Whether to honour rate limits by waiting and retrying (default true). */
  throttle?: boolean
  /** Per-request timeout (default 15 s). */
  requestTimeoutMs?: number
  /** Longest `retry-after` worth waiting for; longer waits fail at once (default 60 s). */
  maxRetryAfterSeconds?: number
}

interface LimitOptions {
  method: string
  url: string
}

/**
 * Creates an Octokit for GitHub (or a GHES / the simulator) at `baseUrl`, with bounded retries
 * of transient failures and rate-limit handling that waits the `retry-after` GitHub asks for,
 * a bounded number of times. Its own logging is silenced: callers log what matters, and the
 * default console logger could print request details.
 */
export function createOctokit(opts: CreateOctokitOptions): Octokit {
  const retries = opts.retries ?? 2
  const maxWait = opts.maxRetryAfterSeconds ?? 60
  const timeoutMs = opts.requestTimeoutMs ?? 15_000
  const onLimit = (retryAfter: number, _options: LimitOptions, _octokit: unknown, retryCount: number) =>
    retryCount < retries && retryAfter <= maxWait
  const octokit = new PorticoOctokit({
    ...(opts.token ? { auth: opts.token } : {}),
    baseUrl: opts.baseUrl.replace(/\/+$/, ''),
    userAgent: opts.userAgent ?? 'portico',
    log: { debug() {}, info() {}, warn() {}, error() {} },
    // 429 is left to the throttling handlers, which honour retry-after.
    retry: {
      enabled: retries > 0,
      retries,
      retryAfterBaseValue: opts.retryBaseMs ?? 1000,
      doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451],
    },
    // The deadline is per HTTP attempt: retries and rate-limit waits each get a fresh one.
    request: {
      fetch: (url: string | URL, init: RequestInit = {}) =>
        fetch(url, {
          ...init,
          signal: init.signal
            ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)])
            : AbortSignal.timeout(timeoutMs),
        }),
    },
    throttle: {
      enabled: opts.throttle ?? true,
      onRateLimit: onLimit,
      onSecondaryRateLimit: onLimit,
    },
  })
  recordGithubMetrics(octokit, opts.token ? classifyToken(opts.token) : 'none')
  return octokit
}

/** Counts every call (route, status, conditional, counted) and keeps the latest rate-limit remaining. */
function recordGithubMetrics(octokit: Octokit, tokenKind: string): void {
  octokit.hook.wrap('request', async (request, options) => {
    const route = `${options.method} ${options.url}`
    const headers = (options.headers ?? {}) as Record<string, unknown>
    const conditional = headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
    const record = (status: number, responseHeaders?: Record<string, unknown>) => {
      // GitHub does not charge a 304 answering a conditional request, nor a call that got no answer.
      const counted = status !== 0 && !(conditional && status === 304)
      githubRequests.inc({
        route,
        status: String(status),
        conditional: String(conditional),
        counted: String(counted),
      })
      const remaining = Number(responseHeaders?.['x-ratelimit-remaining'])
      if (responseHeaders?.['x-ratelimit-remaining'] !== undefined && Number.isFinite(remaining))
        githubRateLimitRemaining.set({ token_kind: tokenKind }, remaining)
    }
    try {
      const response = await request(options)
      record(response.status, response.headers as Record<string, unknown>)
      return response
    } catch (err) {
      const e = err as { status?: unknown; response?: { headers?: Record<string, unknown> } }
      // Octokit reports network failures as status 500 without a response.
      record(e.response && typeof e.status === 'number' ? e.status : 0, e.response?.headers)
      throw err
    }
  })
}
