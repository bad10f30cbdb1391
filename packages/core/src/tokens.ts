/** What kind of GitHub credential a token string is, judged by its prefix. */
export type TokenKind =
  | 'classic-pat'
  | 'fine-grained-pat'
  | 'oauth'
  | 'user-to-server'
  | 'server-to-server'
  | 'refresh'
  | 'unknown'

const TOKEN_PREFIXES: ReadonlyArray<readonly [string, TokenKind]> = [
  ['github_pat_', 'fine-grained-pat'],
  ['ghp_', 'classic-pat'],
  ['gho_', 'oauth'],
  ['ghu_', 'user-to-server'],
  ['ghs_', 'server-to-server'],
  ['ghr_', 'refresh'],
]

/**
 * Classifies a GitHub token by its prefix (`ghp_`, `github_pat_`, `gho_`, `ghu_`, `ghs_`, `ghr_`).
 * Anything else, including legacy 40-hex tokens, is `'unknown'`.
 */
export function classifyToken(token: string): TokenKind {
  for (const [prefix, kind] of TOKEN_PREFIXES) if (token.startsWith(prefix)) return kind
  return 'unknown'
}

const REDACTED = '[REDACTED]'

// Keys whose value is a credential, in query strings, form bodies, env dumps and JSON text:
// anything ending in token/secret/password/api key (access_token, client_secret, GITHUB_TOKEN…).
const SECRET_KEY = '[A-Za-z0-9_.-]*?(?:token|secret|password|passwd|api_?key)'
// A credential value: up to whitespace, a separator or a bracket, not counting a sentence's final dots.
const VALUE = String.raw`[^\s&#"',;()<>\[\]{}]*[^\s&#"',;()<>\[\]{}.]`

type Replacer = (match: string, ...groups: string[]) => string

/** Ordered: whole-credential forms (URL userinfo, headers) first, bare token shapes last. */
const RULES: ReadonlyArray<readonly [RegExp, Replacer]> = [
  // Userinfo in URLs: https://user:secret@host, https://TOKEN@host. `git@` (SSH user) is no secret.
  [
    // The lookbehind pins the scheme's start, keeping the scan linear on long runs of scheme characters.
    /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]+)@/gi,
    (m, scheme, userinfo) => (userinfo === 'git' ? m : `${scheme}${REDACTED}@`),
  ],
  // Authorization / Proxy-Authorization header values; the scheme is kept for debugging.
  [
    new RegExp(
      String.raw`(\bauthorization["']?\s*[:=]\s*["']?)(?:(basic|bearer|token|digest|negotiate|ntlm|remoteauth)\s+)?(?:\[REDACTED\]|${VALUE})`,
      'gi',
    ),
    (_m, prefix, scheme) => `${prefix}${scheme === undefined ? '' : `${scheme} `}${REDACTED}`,
  ],
  // Cookie / Set-Cookie header values, to the end of the line.
  [/(\b(?:set-)?cookie["']?\s*:\s*["']?)[^\r\n"']+/gi, (_m, prefix) => `${prefix}${REDACTED}`],
  // Git credential userinfo outside a URL, e.g. "x-access-token:abc@github.com".
  [/\b(x-access-token|x-oauth-basic|oauth2):[^\s@/:]+@/gi, (_m, user) => `${user}:${REDACTED}@`],
  // key=value in query strings, form bodies and env dumps.
  [new RegExp(`(?<![A-Za-z0-9_.-])(${SECRET_KEY})=${VALUE}`, 'gi'), (_m, key) => `${key}=${REDACTED}`],
  // "key": "value" in JSON-ish text.
  [
    new RegExp(String.raw`(["'](${SECRET_KEY})["']\s*:\s*["'])[^"']+`, 'gi'),
    (_m, prefix) => `${prefix}${REDACTED}`,
  ],
  // Basic credentials are base64 of "user:password"; requiring the colon spares prose like "basic setup".
  [
    /\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])/gi,
    (m, prefix, value) =>
      Buffer.from(value, 'base64').toString('latin1').includes(':') ? `${prefix}${REDACTED}` : m,
  ],
  // Bearer credentials of any shape (JWTs, opaque tokens, legacy hex).
  [
    /\b(bearer\s+)(?=[A-Za-z0-9._~+/-]{16})[A-Za-z0-9._~+/-]*[A-Za-z0-9_~+/-]=*/gi,
    (_m, prefix) => `${prefix}${REDACTED}`,
  ],
  // Legacy 40-hex tokens only after "token"; bare 40-hex strings are usually commit SHAs. The
  // separator is one alternative or the other: `\s*[:=]?\s*` backtracked quadratically on
  // "token" and a long run of blanks (a review: 40,000 of them held the event loop 4.6 s).
  [/\b(token(?:\s*[:=]\s*|\s*))[0-9a-f]{40}\b/gi, (_m, prefix) => `${prefix}${REDACTED}`],
  // Prefixed GitHub tokens anywhere, even glued to other text.
  [/gh[pousr]_[A-Za-z0-9]{20,}/g, () => REDACTED],
  [/github_pat_[A-Za-z0-9_]{22,}/g, () => REDACTED],
]

/**
 * Replaces anything token-like in free text with `[REDACTED]`: prefixed GitHub tokens, URL
 * userinfo, Authorization/Cookie header values, Basic and Bearer credentials, secret-named
 * `key=value` pairs, and 40-hex legacy tokens in a credential context. Bare 40-hex strings
 * (commit SHAs) are left alone.
 */
export function redactSecrets(text: string): string {
  let out = text
  for (const [pattern, replace] of RULES)
    out = out.replace(pattern, replace as (m: string, ...a: unknown[]) => string)
  return out
}

/** Characters of a field name {@link redactFieldName} keeps: callers show at most 100. */
const FIELD_NAME_KEPT = 200

/**
 * A field name a caller sent, safe to echo in a refusal or a log line: its first 200 characters
 * (bounding the work on a name as long as the body), through {@link redactSecrets}, and
 * `[REDACTED]` whole when it holds a run of 40 or more hex digits (a legacy token, whatever
 * surrounds it). No field of ours is named so, while a commit SHA in free text is left alone by
 * {@link redactSecrets}, so the stricter rule is for names only.
 */
export function redactFieldName(name: string): string {
  const head = name.slice(0, FIELD_NAME_KEPT)
  return /[0-9a-f]{40}/i.test(head) ? REDACTED : redactSecrets(head)
}

/**
 * Makes a message safe to store: redacts secrets first, then truncates to at most `max`
 * characters, ending with `…` when cut (never splitting a surrogate pair).
 */
export function truncateMessage(text: string, max = 500): string {
  const limit = Math.max(0, Math.floor(max))
  const redacted = redactSecrets(text)
  if (redacted.length <= limit) return redacted
  if (limit === 0) return ''
  let end = limit - 1
  const last = redacted.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${redacted.slice(0, end)}…`
}
