import session from '@fastify/session'
import { AppError } from '@portico/core'
import { RedisStore } from 'connect-redis'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** What a signed-in user's session holds. The GitHub token is encrypted with the keyring. */
export interface SessionUser {
  id: string
  login: string
  name: string | null
  avatar_url: string | null
}

declare module 'fastify' {
  interface Session {
    user?: SessionUser
    /** The user's OAuth token, encrypted with `encrypt(config.keyring, …)`. */
    githubToken?: string
    /** OAuth `state` of a sign-in in progress (single-use). */
    oauthState?: string
    /** Where to go after a successful sign-in (a same-origin relative path). */
    returnTo?: string
  }
}

/** Name of the session cookie. */
export const SESSION_COOKIE = 'portico_session'
const THIRTY_DAYS_MS = 30 * 24 * 60 * 60 * 1000

const storeUnavailable = (cause: unknown) =>
  new AppError(503, 'SESSION_STORE_UNAVAILABLE', 'Sessions are unavailable. Try again shortly.', { cause })

/**
 * Server-side sessions in Redis (connect-redis on the API's ioredis client), 30-day rolling
 * lifetime. Keys live under `QUEUE_PREFIX`, so several API processes share them and each test
 * file stays isolated. The cookie only carries the signed session id.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const redisStore = new RedisStore({
      client: fastify.redis,
      prefix: `${config.QUEUE_PREFIX}:sess:`,
      ttl: THIRTY_DAYS_MS / 1000,
    })
    type Cb = (err?: unknown, data?: unknown) => void
    // Redis failures become a 503 with a stable code instead of a bare 500.
    const wrap =
      (op: (...args: never[]) => Promise<unknown>) =>
      (...args: unknown[]) => {
        const cb = args.pop() as Cb
        ;(op as (...a: unknown[]) => Promise<unknown>).apply(redisStore, args).then(
          (data) => cb(undefined, data ?? null),
          (err: unknown) => cb(storeUnavailable(err)),
        )
      }
    const store = {
      get: wrap(redisStore.get),
      set: wrap(redisStore.set),
      destroy: wrap(redisStore.destroy),
    }

    await fastify.register(session, {
      secret: config.SESSION_SECRET,
      cookieName: SESSION_COOKIE,
      store: store as never,
      rolling: true,
      saveUninitialized: false,
      cookie: {
        path: '/',
        httpOnly: true,
        sameSite: 'lax',
        secure: config.PUBLIC_URL.startsWith('https:'),
        maxAge: THIRTY_DAYS_MS,
      },
    })
  },
  { name: 'session', dependencies: ['cookie', 'redis'] },
)
