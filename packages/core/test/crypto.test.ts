import { randomBytes, randomInt } from 'node:crypto'
import t from 'tap'
import {
  decrypt,
  encrypt,
  generateKey,
  type Keyring,
  needsRotation,
  parseKeyring,
  rotate,
} from '../src/crypto.js'
import { AppError } from '../src/errors.js'

const KEY_A = generateKey()
const KEY_B = generateKey()
const ring = parseKeyring(`main:${KEY_A}`)

const SAMPLE_CHARS = [
  'a',
  'Z',
  '0',
  ' ',
  '.',
  ':',
  '\n',
  'é',
  'ß',
  '漢',
  '字',
  '😀',
  '👩‍💻',
  '\u0000',
  '"',
  '\\',
]

/** Random well-formed strings: empty, ASCII, multi-byte and astral characters, occasionally long. */
function randomPlaintext(): string {
  return randomString(randomInt(0, 10) === 0 ? randomInt(1000, 20000) : randomInt(0, 64))
}

/** `length` characters drawn from SAMPLE_CHARS (UTF-8: 1 to 11 bytes each). */
function randomString(length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += SAMPLE_CHARS[randomInt(SAMPLE_CHARS.length)]
  return out
}

function isDecryptFailure(err: unknown): boolean {
  return (
    err instanceof AppError &&
    err.statusCode === 500 &&
    err.code === 'TOKEN_DECRYPT_FAILED' &&
    err.message === 'Stored credential could not be decrypted.'
  )
}

/** Asserts that `fn` throws the generic decrypt failure (tap's `throws` takes no predicate). */
function failsToDecrypt(t: Pick<typeof import('tap').t, 'ok'>, fn: () => unknown, name: string): void {
  try {
    fn()
    t.ok(false, `${name}: expected TOKEN_DECRYPT_FAILED, nothing was thrown`)
  } catch (err) {
    t.ok(isDecryptFailure(err), `${name}${isDecryptFailure(err) ? '' : `: got ${String(err)}`}`)
  }
}

function rejects(
  t: Pick<typeof import('tap').t, 'ok'>,
  keyring: Keyring,
  envelope: string,
  name: string,
): void {
  failsToDecrypt(t, () => decrypt(keyring, envelope), name)
}

t.test('generateKey returns base64 of 32 random bytes', async (t) => {
  const key = generateKey()
  t.equal(Buffer.from(key, 'base64').length, 32)
  t.equal(Buffer.from(key, 'base64').toString('base64'), key)
  t.not(generateKey(), key)
})

t.test('round-trips random plaintexts', async (t) => {
  const plaintexts = ['', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', '😀', 'x'.repeat(100_000)]
  for (let i = 0; i < 300; i++) plaintexts.push(randomPlaintext())
  let ok = 0
  for (const plaintext of plaintexts) {
    const envelope = encrypt(ring, plaintext)
    if (decrypt(ring, envelope) === plaintext) ok++
    else t.fail(`round trip failed for plaintext of length ${plaintext.length}`)
  }
  t.equal(ok, plaintexts.length)
})

t.test('envelope format', async (t) => {
  const envelope = encrypt(ring, 'secret')
  t.match(envelope, /^v1\.main\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/)
  t.notMatch(envelope, /secret/)
  t.match(encrypt(ring, ''), /^v1\.main\.[A-Za-z0-9_-]{16}\.\.[A-Za-z0-9_-]{22}$/)
  t.equal(decrypt(ring, encrypt(ring, '')), '')
})

t.test('nonces are unique: the same plaintext gives different envelopes', async (t) => {
  const envelopes = new Set<string>()
  const nonces = new Set<string>()
  for (let i = 0; i < 500; i++) {
    const envelope = encrypt(ring, 'same plaintext')
    envelopes.add(envelope)
    nonces.add(envelope.split('.')[2]!)
  }
  t.equal(envelopes.size, 500)
  t.equal(nonces.size, 500)
})

const TAMPER_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=:'

// Every position times every replacement is quadratic in the envelope's length (each try copies and
// decrypts the whole envelope), so exhaustive tampering stays on short plaintexts: a 20,000-character
// one took longer than tap's 300 s file timeout in CI. Long envelopes get sampled positions below.
t.test('changing any single character of any segment is rejected', async (t) => {
  const alphabet = TAMPER_ALPHABET
  for (const plaintext of [
    '',
    'a',
    'gho_16C7e42F292c6912E7710c838347Ae178B4a',
    randomString(randomInt(1, 64)),
  ]) {
    const envelope = encrypt(ring, plaintext)
    let accepted = 0
    for (let i = 0; i < envelope.length; i++) {
      for (const replacement of alphabet) {
        if (replacement === envelope[i]) continue
        const tampered = envelope.slice(0, i) + replacement + envelope.slice(i + 1)
        try {
          decrypt(ring, tampered)
          accepted++
          t.fail(`accepted tampered envelope at index ${i}`)
        } catch (err) {
          if (!isDecryptFailure(err)) t.fail(`unexpected error at index ${i}: ${String(err)}`)
        }
      }
    }
    t.equal(accepted, 0, `no single-character change accepted (length ${plaintext.length})`)
  }
})

t.test('changing a character of a long envelope is rejected, at sampled positions', async (t) => {
  const envelope = encrypt(ring, randomString(20_000))
  const segments = envelope.split('.')
  // Every position of the header, nonce and tag, and 500 random positions of the ciphertext.
  const ciphertextStart = segments.slice(0, 3).join('.').length + 1
  const ciphertextEnd = ciphertextStart + segments[3]!.length
  const positions = new Set<number>()
  for (let i = 0; i < ciphertextStart; i++) positions.add(i)
  for (let i = ciphertextEnd; i < envelope.length; i++) positions.add(i)
  positions.add(ciphertextStart)
  positions.add(ciphertextEnd - 1)
  while (positions.size < ciphertextStart + (envelope.length - ciphertextEnd) + 500) {
    positions.add(randomInt(ciphertextStart, ciphertextEnd))
  }
  let accepted = 0
  let tried = 0
  for (const i of positions) {
    const replacement = TAMPER_ALPHABET.replace(envelope[i]!, '')[randomInt(TAMPER_ALPHABET.length - 1)]!
    tried++
    try {
      decrypt(ring, envelope.slice(0, i) + replacement + envelope.slice(i + 1))
      accepted++
      t.fail(`accepted tampered envelope at index ${i}`)
    } catch (err) {
      if (!isDecryptFailure(err)) t.fail(`unexpected error at index ${i}: ${String(err)}`)
    }
  }
  t.ok(envelope.length > 20_000, 'the envelope is long')
  t.equal(tried, positions.size)
  t.equal(accepted, 0)
})

t.test('flipping any single bit of nonce, ciphertext or tag bytes is rejected', async (t) => {
  const envelope = encrypt(ring, 'a credential worth protecting')
  const parts = envelope.split('.')
  let accepted = 0
  for (const index of [2, 3, 4]) {
    const bytes = Buffer.from(parts[index]!, 'base64url')
    for (let byte = 0; byte < bytes.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes)
        copy[byte]! ^= 1 << bit
        const tampered = [...parts]
        tampered[index] = copy.toString('base64url')
        try {
          decrypt(ring, tampered.join('.'))
          accepted++
        } catch (err) {
          if (!isDecryptFailure(err)) t.fail(String(err))
        }
      }
    }
  }
  t.equal(accepted, 0)
})

t.test('truncated, extended or re-padded segments are rejected', async (t) => {
  const envelope = encrypt(ring, 'payload')
  const [v, id, nonce, ct, tag] = envelope.split('.') as [string, string, string, string, string]
  rejects(t, ring, [v, id, nonce, ct, tag.slice(0, -1)].join('.'), 'truncated tag')
  rejects(t, ring, [v, id, nonce, ct, tag.slice(0, 16)].join('.'), 'tag shortened to 12 bytes')
  rejects(t, ring, [v, id, nonce, ct, `${tag}AA`].join('.'), 'extended tag')
  rejects(t, ring, [v, id, nonce, ct, `${tag}==`].join('.'), 'padded tag')
  rejects(t, ring, [v, id, nonce.slice(0, -1), ct, tag].join('.'), 'truncated nonce')
  rejects(t, ring, [v, id, `${nonce}AA`, ct, tag].join('.'), 'extended nonce')
  rejects(t, ring, [v, id, nonce, ct.slice(0, -1), tag].join('.'), 'truncated ciphertext')
  rejects(t, ring, [v, id, nonce, `${ct}AA`, tag].join('.'), 'extended ciphertext')
  rejects(t, ring, [v, id, nonce, '', tag].join('.'), 'emptied ciphertext')
  rejects(t, ring, [v, id, nonce, ct, tag, ''].join('.'), 'extra segment')
  rejects(t, ring, [v, id, nonce, ct].join('.'), 'missing segment')
  rejects(t, ring, ['v2', id, nonce, ct, tag].join('.'), 'other version')
  rejects(t, ring, ['V1', id, nonce, ct, tag].join('.'), 'uppercase version')
})

t.test('the key id is authenticated: swapping it is rejected', async (t) => {
  // Both ids map to the SAME key, so only the AAD binding can catch the swap.
  const twin = parseKeyring(`a:${KEY_A},b:${KEY_A}`)
  const envelope = encrypt(twin, 'bound to a')
  t.equal(decrypt(twin, envelope), 'bound to a')
  rejects(t, twin, envelope.replace(/^v1\.a\./, 'v1.b.'), 'key id swapped to another id with the same key')

  const two = parseKeyring(`a:${KEY_A},b:${KEY_B}`)
  rejects(t, two, encrypt(two, 'x').replace(/^v1\.a\./, 'v1.b.'), 'key id swapped to a different key')
})

t.test('unknown key id is rejected', async (t) => {
  const other = parseKeyring(`other:${KEY_B}`)
  rejects(t, ring, encrypt(other, 'hello'), 'envelope from a ring this ring does not know')
  const sameKeyOtherId = parseKeyring(`other:${KEY_A}`)
  rejects(t, ring, encrypt(sameKeyOtherId, 'hello'), 'same key bytes under an unknown id')
})

t.test('malformed envelopes are rejected', async (t) => {
  const valid = encrypt(ring, 'x')
  const cases: Array<[string, unknown]> = [
    ['empty', ''],
    ['plain text', 'not an envelope'],
    ['only dots', '....'],
    ['raw token', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
    ['base64 in place of base64url', valid.replace(/-/g, '+').replace(/_/g, '/').replace(/$/, '+')],
    ['whitespace around', ` ${valid} `],
    ['newline appended', `${valid}\n`],
    ['invalid key id characters', valid.replace('.main.', '.ma!n.')],
    ['empty key id', valid.replace('.main.', '..')],
    ['non-string', 42],
    ['null', null],
  ]
  for (const [name, envelope] of cases) {
    failsToDecrypt(t, () => decrypt(ring, envelope as string), name)
  }
})

t.test('error messages never contain plaintext or key material', async (t) => {
  const plaintext = 'gho_topsecretvalue1234567890'
  // Many envelopes, so that every next-to-last character occurs (one of them is 'A' once in 64).
  for (let i = 0; i < 256; i++) {
    const envelope = encrypt(ring, plaintext)
    // The tag's next-to-last base64url character (six significant bits), always changed: choosing
    // the replacement by the LAST character left it unchanged once in 64 runs.
    const at = envelope.length - 2
    const tampered = `${envelope.slice(0, at)}${envelope[at] === 'A' ? 'B' : 'A'}${envelope.slice(at + 1)}`
    let error: unknown
    try {
      decrypt(ring, tampered)
    } catch (err) {
      error = err
    }
    if (!error) {
      t.fail(`a tampered tag was accepted: ${tampered}`)
      continue
    }
    const text = `${String(error)} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`
    if (text.includes(plaintext) || text.includes(KEY_A) || (error as AppError).expose !== false) {
      t.fail(`the error of envelope ${i} tells too much: ${text}`)
    }
  }
  t.pass('256 tampered envelopes refused without plaintext or key material')
})

t.test('keyring never exposes key material when serialised or inspected', async (t) => {
  const keyring = parseKeyring(`new:${KEY_B}, old:${KEY_A}`)
  t.same(JSON.parse(JSON.stringify(keyring)), { activeKeyId: 'new', keyIds: ['new', 'old'] })
  const { inspect } = await import('node:util')
  const shown = inspect(keyring, { showHidden: true, depth: 5 })
  t.notMatch(shown, KEY_A)
  t.notMatch(shown, KEY_B)
  t.ok(Object.isFrozen(keyring))
})

t.test('key rotation', async (t) => {
  const oldRing = parseKeyring(`old:${KEY_A}`)
  const rotated = parseKeyring(`new:${KEY_B},old:${KEY_A}`)
  const newOnly = parseKeyring(`new:${KEY_B}`)

  for (let i = 0; i < 50; i++) {
    const plaintext = randomPlaintext()
    const oldEnvelope = encrypt(oldRing, plaintext)
    t.equal(decrypt(rotated, oldEnvelope), plaintext, 'a rotated-out key still decrypts')
    t.equal(needsRotation(rotated, oldEnvelope), true)
    t.equal(needsRotation(oldRing, oldEnvelope), false)

    const newEnvelope = rotate(rotated, oldEnvelope)
    t.match(newEnvelope, /^v1\.new\./)
    t.equal(needsRotation(rotated, newEnvelope), false)
    t.equal(decrypt(rotated, newEnvelope), plaintext)
    t.equal(decrypt(newOnly, newEnvelope), plaintext, 'the old key can be dropped after rotation')
    rejects(t, newOnly, oldEnvelope, 'old envelope without its key')

    t.equal(rotate(rotated, newEnvelope), newEnvelope, 'already active: returned unchanged')
  }
  t.equal(rotated.activeKeyId, 'new')
  t.same(rotated.keyIds, ['new', 'old'])
})

t.test('rotate and needsRotation reject bad envelopes', async (t) => {
  const rotated = parseKeyring(`new:${KEY_B},old:${KEY_A}`)
  failsToDecrypt(t, () => rotate(rotated, 'garbage'), 'rotate garbage')
  failsToDecrypt(t, () => needsRotation(rotated, 'garbage'), 'needsRotation garbage')
  const env = encrypt(rotated, 'x')
  const tampered = env.replace(/\.([A-Za-z0-9_-])/, (_m, c: string) => `.${c === 'A' ? 'B' : 'A'}`)
  failsToDecrypt(t, () => rotate(rotated, tampered), 'active-key envelope is verified too')
})

t.test('parseKeyring accepts valid specs', async (t) => {
  const keyring = parseKeyring(`k1:${KEY_A}`)
  t.equal(keyring.activeKeyId, 'k1')
  t.same(keyring.keyIds, ['k1'])
  t.same(parseKeyring(` a-1:${KEY_A} ,  B_2:${KEY_B} `).keyIds, ['a-1', 'B_2'], 'whitespace around entries')
  t.same(parseKeyring(`${'x'.repeat(32)}:${KEY_A}`).keyIds, ['x'.repeat(32)])
  t.same(parseKeyring('dev:cG9ydGljby1kZXZlbG9wbWVudC1rZXktMzJieXRlcyE=').keyIds, ['dev'])
})

t.test('parseKeyring rejections', async (t) => {
  const short = randomBytes(16).toString('base64')
  const long = randomBytes(33).toString('base64')
  const cases: Array<[string, string, RegExp]> = [
    ['empty', '', /at least one/],
    ['whitespace only', '   ', /at least one/],
    ['16-byte key', `k:${short}`, /entry 1 \(id "k"\).*32 bytes \(got 16\)/],
    ['33-byte key', `k:${long}`, /entry 1 \(id "k"\).*32 bytes \(got 33\)/],
    ['empty key', 'k:', /entry 1 \(id "k"\).*base64/],
    ['not base64', `k:${'!'.repeat(44)}`, /entry 1 \(id "k"\).*base64/],
    ['base64url key', `k:${KEY_A.replace(/=$/, '')}`, /entry 1 \(id "k"\).*base64/],
    ['duplicate id', `a:${KEY_A},b:${KEY_B},a:${KEY_B}`, /entry 3 \(id "a"\).*duplicate/],
    ['missing colon', KEY_A, /entry 1 .*keyId:base64Key/],
    ['empty id', `:${KEY_A}`, /entry 1 .*invalid key id/],
    ['id too long', `${'x'.repeat(33)}:${KEY_A}`, /entry 1 .*invalid key id/],
    ['id with a dot', `a.b:${KEY_A}`, /entry 1 .*invalid key id/],
    ['trailing comma', `a:${KEY_A},`, /entry 2 is empty/],
    ['empty middle entry', `a:${KEY_A},,b:${KEY_B}`, /entry 2 is empty/],
    ['second entry bad', `a:${KEY_A},b:${short}`, /entry 2 \(id "b"\)/],
  ]
  for (const [name, spec, message] of cases) {
    try {
      parseKeyring(spec)
      t.fail(`${name}: should throw`)
    } catch (err) {
      t.ok(err instanceof Error && !(err instanceof AppError), `${name}: plain Error`)
      const text = (err as Error).message
      t.match(text, message, name)
      for (const secret of [KEY_A, KEY_B, short, long]) t.notMatch(text, secret, `${name}: no key material`)
    }
  }
})

t.test('keyrings not made by parseKeyring are refused', async (t) => {
  const fake: Keyring = { activeKeyId: 'main', keyIds: ['main'] }
  t.throws(() => encrypt(fake, 'x'), TypeError)
  t.throws(() => decrypt(fake, encrypt(ring, 'x')), TypeError)
})
