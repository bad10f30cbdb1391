import { type KeyObject, verify } from 'node:crypto'
import { ApiError } from './context.js'

const DOCS =
  'https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app'
/** GitHub refuses a JWT whose `exp` is more than 10 minutes ahead. */
export const JWT_MAX_LIFETIME_S = 600
/** Clock drift tolerated on `iat` and `exp` (GitHub recommends backdating `iat` by 60 s). */
export const JWT_SKEW_S = 60

/** The claims GitHub reads from an App's JWT. */
export interface AppJwtClaims {
  iss: string | number
  iat: number
  exp: number
}

const B64URL = /^[A-Za-z0-9_-]+$/

/** True when `token` has the three base64url segments of a JWS compact serialisation. */
export function looksLikeJwt(token: string): boolean {
  const parts = token.split('.')
  return parts.length === 3 && parts.every((p, i) => B64URL.test(p) || (i === 2 && p === ''))
}

const undecodable = () =>
  new ApiError(401, 'A JSON web token could not be decoded', { documentation_url: DOCS })

function decodeJson(segment: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch {
    // fall through
  }
  throw undecodable()
}

/** Reads the unverified `iss` claim so the caller can find the App whose key verifies the token. */
export function unverifiedIssuer(token: string): string | null {
  const [, payload = ''] = token.split('.')
  const iss = decodeJson(payload).iss
  return typeof iss === 'string' || typeof iss === 'number' ? String(iss) : null
}

/**
 * Verifies an App JWT the way GitHub does: RS256 signature (node's `crypto.verify`, RSASSA-PKCS1-v1_5
 * over SHA-256) by `publicKey`; `exp` in the future and at most 10 minutes ahead; `iat` not in the
 * future beyond {@link JWT_SKEW_S}. Errors are GitHub's 401 messages. `now` is epoch seconds.
 */
export function verifyAppJwt(token: string, publicKey: KeyObject, now = Date.now() / 1000): AppJwtClaims {
  const [header = '', payload = '', signature = ''] = token.split('.')
  const head = decodeJson(header)
  if (head.alg !== 'RS256') throw undecodable()
  const ok = verify(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    publicKey,
    Buffer.from(signature, 'base64url'),
  )
  if (!ok) throw undecodable()
  const claims = decodeJson(payload)
  const { iat, exp } = claims
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat > now + JWT_SKEW_S)
    throw new ApiError(
      401,
      "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.",
      { documentation_url: DOCS },
    )
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= now)
    throw new ApiError(
      401,
      "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
      { documentation_url: DOCS },
    )
  if (exp > now + JWT_MAX_LIFETIME_S + JWT_SKEW_S || exp - iat > JWT_MAX_LIFETIME_S + JWT_SKEW_S)
    throw new ApiError(401, "'Expiration time' claim ('exp') is too far in the future.", {
      documentation_url: DOCS,
    })
  return { iss: claims.iss as string | number, iat, exp }
}
