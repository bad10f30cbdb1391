import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { AppError } from './errors.js'

/**
 * A parsed `TOKEN_ENCRYPTION_KEYS` keyring. Only ids are visible: the key bytes live in a
 * module-private map so that logging or serialising a config object can never leak them.
 */
export interface Keyring {
  /** Id of the key new envelopes are encrypted with (the first entry of the spec). */
  readonly activeKeyId: string
  /** Every key id that can decrypt, active first. */
  readonly keyIds: readonly string[]
}

const VERSION = 'v1'
const ALGORITHM = 'aes-256-gcm'
const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/

const keyMaterial = new WeakMap<Keyring, ReadonlyMap<string, Buffer>>()

/**
 * Parses a keyring spec: comma-separated `keyId:base64-of-32-bytes` entries; the first key
 * encrypts, all of them decrypt.
 *
 * @throws {Error} naming the offending entry by position (and id when the id itself is valid);
 *   the message never contains key material.
 */
export function parseKeyring(spec: string): Keyring {
  const entries = spec.split(',').map((entry) => entry.trim())
  if (entries.length === 1 && entries[0] === '') {
    throw new Error('expected at least one keyId:base64Key entry (none given)')
  }
  const keys = new Map<string, Buffer>()
  entries.forEach((entry, index) => {
    const position = `entry ${index + 1}`
    if (entry === '') throw new Error(`${position} is empty`)
    const colon = entry.indexOf(':')
    if (colon < 0) throw new Error(`${position} is not of the form keyId:base64Key`)
    const id = entry.slice(0, colon)
    // The id is echoed only once it is known to be a harmless short identifier.
    if (!KEY_ID_PATTERN.test(id)) {
      throw new Error(`${position} has an invalid key id (expected 1-32 characters of A-Z a-z 0-9 _ -)`)
    }
    const label = `${position} (id "${id}")`
    if (keys.has(id)) throw new Error(`${label} duplicates an earlier key id`)
    const key = decodeBase64Key(entry.slice(colon + 1))
    if (key === undefined) throw new Error(`${label} is not valid base64`)
    if (key.length !== KEY_BYTES) {
      throw new Error(`${label} must decode to exactly ${KEY_BYTES} bytes (got ${key.length})`)
    }
    keys.set(id, key)
  })
  const keyIds = Object.freeze([...keys.keys()])
  const keyring: Keyring = Object.freeze({ activeKeyId: keyIds[0]!, keyIds })
  keyMaterial.set(keyring, keys)
  return keyring
}

/** Strict base64: rejects stray characters and non-canonical encodings Buffer would accept. */
function decodeBase64Key(text: string): Buffer | undefined {
  if (!BASE64_PATTERN.test(text) || text.length % 4 !== 0) return undefined
  const bytes = Buffer.from(text, 'base64')
  return bytes.toString('base64') === text ? bytes : undefined
}

/** Strict base64url without padding; re-encoding must give the input back (no malleable bits). */
function decodeBase64Url(text: string): Buffer | undefined {
  if (!BASE64URL_PATTERN.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64url')
  return bytes.toString('base64url') === text ? bytes : undefined
}

/** Returns a fresh random 32-byte key, base64-encoded, for use in `TOKEN_ENCRYPTION_KEYS`. */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64')
}

function keysOf(keyring: Keyring): ReadonlyMap<string, Buffer> {
  const keys = keyMaterial.get(keyring)
  if (keys === undefined) throw new TypeError('keyring must come from parseKeyring()')
  return keys
}

function decryptFailed(): AppError {
  return new AppError(500, 'TOKEN_DECRYPT_FAILED', 'Stored credential could not be decrypted.')
}

function aad(keyId: string): Buffer {
  return Buffer.from(`${VERSION}.${keyId}`, 'utf8')
}

/**
 * Encrypts `plaintext` with the keyring's active key (AES-256-GCM, random 12-byte nonce).
 *
 * @returns an envelope `v1.<keyId>.<nonce>.<ciphertext>.<tag>` (binary parts base64url); the
 *   version and key id are authenticated as associated data.
 */
export function encrypt(keyring: Keyring, plaintext: string): string {
  const keyId = keyring.activeKeyId
  const key = keysOf(keyring).get(keyId)!
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad(keyId))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  const tag = cipher.getAuthTag()
  return [
    VERSION,
    keyId,
    nonce.toString('base64url'),
    ciphertext.toString('base64url'),
    tag.toString('base64url'),
  ].join('.')
}

interface Envelope {
  keyId: string
  nonce: Buffer
  ciphertext: Buffer
  tag: Buffer
}

function parseEnvelope(envelope: unknown): Envelope {
  if (typeof envelope !== 'string') throw decryptFailed()
  const parts = envelope.split('.')
  if (parts.length !== 5) throw decryptFailed()
  const [version, keyId, nonceText, ciphertextText, tagText] = parts as [
    string,
    string,
    string,
    string,
    string,
  ]
  if (version !== VERSION || !KEY_ID_PATTERN.test(keyId)) throw decryptFailed()
  const nonce = decodeBase64Url(nonceText)
  const ciphertext = decodeBase64Url(ciphertextText)
  const tag = decodeBase64Url(tagText)
  // GCM would happily verify a truncated tag, so the exact lengths are enforced here.
  if (nonce?.length !== NONCE_BYTES || tag?.length !== TAG_BYTES || ciphertext === undefined)
    throw decryptFailed()
  return { keyId, nonce, ciphertext, tag }
}

/**
 * Decrypts an envelope made by {@link encrypt} with any key of the ring.
 *
 * @throws {AppError} 500 `TOKEN_DECRYPT_FAILED` when the envelope is malformed, names an unknown
 *   key, or fails authentication (tampered nonce, ciphertext, tag, version or key id).
 */
export function decrypt(keyring: Keyring, envelope: string): string {
  const keys = keysOf(keyring)
  const { keyId, nonce, ciphertext, tag } = parseEnvelope(envelope)
  const key = keys.get(keyId)
  if (key === undefined) throw decryptFailed()
  try {
    const decipher = createDecipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(aad(keyId))
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
  } catch {
    // The underlying error says nothing useful beyond "authentication failed".
    throw decryptFailed()
  }
}

/**
 * Tells whether an envelope was encrypted with a key other than the active one. Only the
 * envelope's structure is checked, not its authenticity.
 *
 * @throws {AppError} 500 `TOKEN_DECRYPT_FAILED` when the envelope is malformed.
 */
export function needsRotation(keyring: Keyring, envelope: string): boolean {
  return parseEnvelope(envelope).keyId !== keyring.activeKeyId
}

/**
 * Re-encrypts an envelope with the active key. An envelope already using the active key is
 * verified and returned unchanged.
 *
 * @throws {AppError} 500 `TOKEN_DECRYPT_FAILED` when the envelope cannot be decrypted.
 */
export function rotate(keyring: Keyring, envelope: string): string {
  const plaintext = decrypt(keyring, envelope)
  return needsRotation(keyring, envelope) ? encrypt(keyring, plaintext) : envelope
}
