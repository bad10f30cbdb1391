import { createHash, randomUUID } from 'node:crypto'
import { AppError } from '@portico/core'
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onSendAsyncHookHandler,
  preHandlerAsyncHookHandler,
} from 'fastify'
import fp from 'fastify-plugin'
import { configure } from 'safe-stable-stringify'

/** How long a first answer is kept for retries (as Stripe keeps its keys). */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600
/**
 * Lifetime of the claim a running request holds (seconds), renewed every third of it while the
 * request runs: a process killed mid-request leaves its key locked this long, not a day.
 */
export const IDEMPOTENCY_PENDING_SECONDS = 60
/** Longest a running request keeps renewing its claim (seconds): a handler that never answers. */
export const IDEMPOTENCY_MAX_HOLD_SECONDS = 15 * 60
/** Longest accepted `Idempotency-Key` (Stripe's bound); printable ASCII only. */
export const IDEMPOTENCY_KEY_MAX = 255
const KEY_PATTERN = new RegExp(`^[\\x20-\\x7e]{1,${IDEMPOTENCY_KEY_MAX}}$`)

interface Stored {
  state: 'pending' | 'done'
  /** Which request holds a pending claim: only it renews, answers or releases it. */
  owner?: string
  /** sha256 of the request body: one key, one request. */
  fingerprint: string
  statusCode?: number
  body?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when this request owns an `Idempotency-Key`: where its answer is stored. */
    idempotencyKey: { redisKey: string; fingerprint: string; claim: string; stopRenewing: () => void } | null
  }
  interface FastifyInstance {
    /**
     * Route hooks for an `Idempotency-Key` header (optional): the first 2xx answer for a
     * (user, key) is kept in Redis for 24 h and replayed to retries with `idempotent-replayed:
     * true`. While the first request runs its claim is renewed; one whose request never answers
     * (the process died) lapses after `pendingSeconds` (default {@link IDEMPOTENCY_PENDING_SECONDS}). 400 INVALID_IDEMPOTENCY_KEY (not 1–255 printable ASCII characters); 409
     * IDEMPOTENCY_KEY_IN_USE while the first request runs; 422 IDEMPOTENCY_KEY_REUSED for the
     * same key with a different body. Add after authentication (keys are per user).
     */
    idempotency(
      scope: string,
      options?: { pendingSeconds?: number },
    ): { preHandler: preHandlerAsyncHookHandler; onSend: onSendAsyncHookHandler }
  }
}

/**
 * Renews, releases or answers a claim only while it is still the caller's (compare-and-set): a
 * request whose claim lapsed must not drop or overwrite the claim of the retry that took over.
 * KEYS[1] the key; ARGV: the claim as written, `renew` | `del` | `set`, seconds, the new value.
 */
const IF_OWNED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'renew' then return redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if ARGV[2] == 'del' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3])
return 1`

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')
/** Keys sorted: `{"a":1,"b":2}` and `{"b":2,"a":1}` are one request body. */
const canonicalJson = configure({ deterministic: true, circularValue: null, bigint: false })
const unavailable = (cause: unknown) =>
  new AppError(503, 'IDEMPOTENCY_UNAVAILABLE', 'Retries cannot be recognised right now. Try again shortly.', {
    cause,
    expose: true,
  })

/** `Idempotency-Key` support for writes that must not happen twice (a retried POST /api/pod). */
export default fp(
  async (fastify: FastifyInstance) => {
    const { redis } = fastify
    const prefix = `${fastify.config.REDIS_PREFIX}:idem`
    fastify.decorateRequest('idempotencyKey', null)

    fastify.decorate(
      'idempotency',
      (scope: string, { pendingSeconds = IDEMPOTENCY_PENDING_SECONDS } = {}) => {
        const preHandler = async function idempotencyPreHandler(
          request: FastifyRequest,
          reply: FastifyReply,
        ) {
          const header = request.headers['idempotency-key']
          if (header === undefined) return
          if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
            throw new AppError(
              400,
              'INVALID_IDEMPOTENCY_KEY',
              `Idempotency-Key must be 1-${IDEMPOTENCY_KEY_MAX} printable ASCII characters.`,
            )
          }
          const who = request.user?.id ?? 'anonymous'
          const redisKey = `${prefix}:${scope}:${who}:${sha256(header)}`
          const fingerprint = sha256(canonicalJson(request.body ?? null) ?? 'null')
          let stored: Stored | undefined
          try {
            const pending: Stored = { state: 'pending', fingerprint, owner: randomUUID() }
            const claim = JSON.stringify(pending)
            const claimed = await redis.set(redisKey, claim, 'EX', pendingSeconds, 'NX')
            if (claimed === 'OK') {
              const renew = () =>
                void redis
                  .eval(IF_OWNED, 1, redisKey, claim, 'renew', pendingSeconds)
                  .catch((err: unknown) =>
                    request.log.warn({ err }, 'could not renew an Idempotency-Key claim'),
                  )
              // Renewed until onSend, which runs even when the client has gone (the handler still
              // runs then, so the claim must stand), for at most IDEMPOTENCY_MAX_HOLD_SECONDS.
              const timer = setInterval(renew, (pendingSeconds * 1000) / 3)
              timer.unref()
              const cap = setTimeout(() => clearInterval(timer), IDEMPOTENCY_MAX_HOLD_SECONDS * 1000)
              cap.unref()
              const stopRenewing = () => {
                clearInterval(timer)
                clearTimeout(cap)
              }
              request.idempotencyKey = { redisKey, fingerprint, claim, stopRenewing }
              return
            }
            const raw = await redis.get(redisKey)
            stored = raw ? (JSON.parse(raw) as Stored) : undefined
          } catch (err) {
            throw unavailable(err)
          }
          if (!stored) {
            throw new AppError(
              409,
              'IDEMPOTENCY_KEY_IN_USE',
              'This Idempotency-Key was just released; retry.',
            )
          }
          // Answers kept before bodies were fingerprinted with sorted keys (until 2026-12-01)
          // were fingerprinted as sent: a retry of one is still recognised, for their 24 hours.
          const asSent = () => sha256(JSON.stringify(request.body ?? null))
          if (stored.fingerprint !== fingerprint && stored.fingerprint !== asSent()) {
            throw new AppError(
              422,
              'IDEMPOTENCY_KEY_REUSED',
              'This Idempotency-Key was already used with a different request body.',
            )
          }
          if (stored.state === 'pending') {
            throw new AppError(
              409,
              'IDEMPOTENCY_KEY_IN_USE',
              'A request with this Idempotency-Key is still in progress; retry shortly.',
            )
          }
          return reply
            .code(stored.statusCode ?? 200)
            .header('content-type', 'application/json; charset=utf-8')
            .header('idempotent-replayed', 'true')
            .send(stored.body)
        }

        const onSend = async function idempotencyOnSend(
          request: FastifyRequest,
          reply: FastifyReply,
          payload: unknown,
        ) {
          const owned = request.idempotencyKey
          if (!owned) return payload
          request.idempotencyKey = null
          owned.stopRenewing()
          try {
            if (reply.statusCode >= 300 || typeof payload !== 'string') {
              // Only an accepted write is an answer to keep (as Stripe does for conflicts and
              // refusals): after an error the client's retry runs the request again.
              await redis.eval(IF_OWNED, 1, owned.redisKey, owned.claim, 'del')
            } else {
              const done: Stored = {
                state: 'done',
                fingerprint: owned.fingerprint,
                statusCode: reply.statusCode,
                body: payload,
              }
              const kept = await redis.eval(
                IF_OWNED,
                1,
                owned.redisKey,
                owned.claim,
                'set',
                IDEMPOTENCY_TTL_SECONDS,
                JSON.stringify(done),
              )
              if (kept !== 1) request.log.warn('an Idempotency-Key claim lapsed before its answer; not kept')
            }
          } catch (err) {
            request.log.warn({ err }, 'could not record the idempotent answer')
          }
          return payload
        }
        return { preHandler, onSend }
      },
    )
  },
  { name: 'idempotency', dependencies: ['redis', 'auth'] },
)
