import { createHash } from 'node:crypto'
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
 * How long a claim outlives the longest the request holding it should run (DEPLOY_WAIT_MS plus
 * REQUEST_TIMEOUT_MS): a process killed mid-request leaves the key locked this long, not a day.
 */
export const IDEMPOTENCY_PENDING_GRACE_SECONDS = 60
/** Longest accepted `Idempotency-Key` (Stripe's bound); printable ASCII only. */
export const IDEMPOTENCY_KEY_MAX = 255
const KEY_PATTERN = new RegExp(`^[\\x20-\\x7e]{1,${IDEMPOTENCY_KEY_MAX}}$`)

interface Stored {
  state: 'pending' | 'done'
  /** sha256 of the request body: one key, one request. */
  fingerprint: string
  statusCode?: number
  body?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when this request owns an `Idempotency-Key`: where its answer is stored. */
    idempotencyKey: { redisKey: string; fingerprint: string } | null
  }
  interface FastifyInstance {
    /**
     * Route hooks for an `Idempotency-Key` header (optional): the first 2xx answer for a
     * (user, key) is kept in Redis for 24 h and replayed to retries with `idempotent-replayed:
     * true`; a claim whose request never answers (the process died) lapses after DEPLOY_WAIT_MS +
     * REQUEST_TIMEOUT_MS + 60 s. 400 INVALID_IDEMPOTENCY_KEY (not 1–255 printable ASCII characters); 409
     * IDEMPOTENCY_KEY_IN_USE while the first request runs; 422 IDEMPOTENCY_KEY_REUSED for the
     * same key with a different body. Add after authentication (keys are per user).
     */
    idempotency(scope: string): { preHandler: preHandlerAsyncHookHandler; onSend: onSendAsyncHookHandler }
  }
}

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
    const { config } = fastify
    const prefix = `${config.REDIS_PREFIX}:idem`
    const pendingSeconds =
      Math.ceil((config.DEPLOY_WAIT_MS + config.REQUEST_TIMEOUT_MS) / 1000) +
      IDEMPOTENCY_PENDING_GRACE_SECONDS
    fastify.decorateRequest('idempotencyKey', null)

    fastify.decorate('idempotency', (scope: string) => {
      const preHandler = async function idempotencyPreHandler(request: FastifyRequest, reply: FastifyReply) {
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
          const pending: Stored = { state: 'pending', fingerprint }
          const claimed = await redis.set(redisKey, JSON.stringify(pending), 'EX', pendingSeconds, 'NX')
          if (claimed === 'OK') {
            request.idempotencyKey = { redisKey, fingerprint }
            return
          }
          const raw = await redis.get(redisKey)
          stored = raw ? (JSON.parse(raw) as Stored) : undefined
        } catch (err) {
          throw unavailable(err)
        }
        if (!stored) {
          throw new AppError(409, 'IDEMPOTENCY_KEY_IN_USE', 'This Idempotency-Key was just released; retry.')
        }
        if (stored.fingerprint !== fingerprint) {
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
        try {
          if (reply.statusCode >= 300 || typeof payload !== 'string') {
            // Only an accepted write is an answer to keep (as Stripe does for conflicts and
            // refusals): after an error the client's retry runs the request again.
            await redis.del(owned.redisKey)
          } else {
            const done: Stored = {
              state: 'done',
              fingerprint: owned.fingerprint,
              statusCode: reply.statusCode,
              body: payload,
            }
            await redis.set(owned.redisKey, JSON.stringify(done), 'EX', IDEMPOTENCY_TTL_SECONDS)
          }
        } catch (err) {
          request.log.warn({ err }, 'could not record the idempotent answer')
        }
        return payload
      }
      return { preHandler, onSend }
    })
  },
  { name: 'idempotency', dependencies: ['redis', 'auth'] },
)
