import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

// Atomically reserves the next write slot: start = max(now, next); next = start + spacing.
const RESERVE = `
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local spacing = tonumber(ARGV[2])
local start = math.max(now, nxt)
redis.call('SET', KEYS[1], start + spacing, 'PX', start + spacing - now + 60000)
return start
`
// Moves the next slot to at least `until` (a rate limit GitHub asked us to respect).
const PUSH_BACK = `
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local untilMs = tonumber(ARGV[1])
if untilMs > nxt then
  redis.call('SET', KEYS[1], untilMs, 'PX', untilMs - tonumber(ARGV[2]) + 60000)
end
return 1
`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Longest wait for a slot spent sleeping in a job; longer waits delay the job instead. */
const MAX_SLEEP_MS = 5000

/** Thrown by {@link WritePacer.write} when the next slot is too far away to wait for in place. */
export class PacingDelay extends Error {
  readonly untilMs: number
  constructor(untilMs: number) {
    super(`GitHub writes with this token are paused until ${new Date(untilMs).toISOString()}`)
    this.name = 'PacingDelay'
    this.untilMs = untilMs
  }
}

/**
 * Spaces GitHub write calls made with one token across every worker process: each write
 * reserves a slot at least `spacingMs` after the previous one, and a `retry-after` pushes every
 * later slot back. Keys hold a hash of the token, never the token.
 *
 * Kept instead of @octokit/plugin-throttling's Redis clustering (Bottleneck with a shared
 * connection) on purpose: that plugin can only make the request wait in place (or fail it),
 * whereas a slot far away must DELAY THE JOB ({@link PacingDelay} → the processor moves the job
 * to delayed and releases the worker) rather than hold a worker, or fail the deploy. Bottleneck's
 * clustering also adds its own Redis scripts and a connection per limiter group; this is two
 * small Lua scripts on the worker's existing connection. The plugin still handles 429/403 waits
 * in-process for every call (see createOctokit).
 */
export class WritePacer {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #spacingMs: number

  constructor(redis: Redis, prefix: string, spacingMs: number) {
    this.#redis = redis
    this.#prefix = prefix
    this.#spacingMs = spacingMs
  }

  #key(token: string): string {
    return `${this.#prefix}:github-writes:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`
  }

  /** Waits for this token's next write slot; throws {@link PacingDelay} when it is far away. */
  async reserve(token: string): Promise<void> {
    const now = Date.now()
    const start = Number(await this.#redis.eval(RESERVE, 1, this.#key(token), now, this.#spacingMs))
    if (start - now > MAX_SLEEP_MS) throw new PacingDelay(start)
    if (start > now) await sleep(start - now)
  }

  /** No write with this token starts before `untilMs` (epoch ms). */
  async pushBack(token: string, untilMs: number): Promise<void> {
    await this.#redis.eval(PUSH_BACK, 1, this.#key(token), Math.ceil(untilMs), Date.now())
  }

  /** Runs `write` in this token's next slot. */
  async write<T>(token: string, write: () => Promise<T>): Promise<T> {
    await this.reserve(token)
    return write()
  }
}
