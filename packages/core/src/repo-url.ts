import { AppError } from './errors.js'

/** A repository reference parsed from user input, pinned to the configured GitHub. */
export interface RepoRef {
  owner: string
  repo: string
  /** host[:port] of the configured GitHub web URL (lowercase). */
  host: string
  /** HTTPS clone URL under the configured GitHub (`…/owner/repo.git`), whatever form the input had. */
  cloneUrl: string
  /** Web URL of the repository (`…/owner/repo`). */
  htmlUrl: string
}

const MAX_INPUT_LENGTH = 2048
const OWNER_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/
const REPO_PATTERN = /^[A-Za-z0-9._-]{1,100}$/
// Printable ASCII only: rules out whitespace, control characters and Unicode look-alikes at once.
const SAFE_CHARS = /^[\x21-\x7e]+$/
const HTTP_FORM = /^(https?):\/\/([^/]*)(\/.*)$/i
const SSH_URL_FORM = /^ssh:\/\/git@([^/:]+)(?::(\d{1,5}))?\/(.*)$/i
const SCP_FORM = /^git@([^/:]+):(.*)$/

/** Why a repository URL was refused; each reason is one sentence that never echoes the input. */
export const REPO_URL_REFUSALS = {
  format: 'it is not an https://, ssh:// or git@ URL of a repository',
  length: `it is longer than ${MAX_INPUT_LENGTH} characters`,
  characters:
    'it contains spaces, control characters, non-ASCII characters, percent-encoding, "?", "#", "\\" or "::"',
  scheme: 'it uses http:// but GitHub is configured with https://',
  credentials:
    'it contains credentials or a user name; paste the URL without them and give the token separately',
  host: 'its host is not the configured GitHub',
  path: 'its path is not owner/repository (links to files, branches, issues or an owner alone are not repositories)',
  name: 'the owner or repository name is not a valid GitHub name',
} as const

/** A key of {@link REPO_URL_REFUSALS}. */
export type RepoUrlRefusal = keyof typeof REPO_URL_REFUSALS

/** `github`: the configured GitHub, named after a host refusal so the caller knows what to use. */
function invalid(reason: RepoUrlRefusal, github?: GitHubBase): AppError {
  const expected = reason === 'host' && github ? ` (${github.base}/owner/repository)` : ''
  return new AppError(
    400,
    'INVALID_REPO_URL',
    `Repo URL must be a valid GitHub repository URL: ${REPO_URL_REFUSALS[reason]}${expected}.`,
  )
}

interface GitHubBase {
  protocol: 'http' | 'https'
  /** host[:port], lowercase, default port omitted. */
  host: string
  hostname: string
  /** Path prefix without trailing slash ('' for none). */
  prefix: string
  /** Origin plus prefix, no trailing slash. */
  base: string
  /** Other host[:port] names GitHub serves the same repositories under (`www.github.com`). */
  aliases: string[]
}

function parseGitHubUrl(githubUrl: string): GitHubBase {
  const url = new URL(githubUrl)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError('githubUrl must be an http(s) URL')
  }
  const prefix = url.pathname.replace(/\/+$/, '')
  return {
    protocol: url.protocol === 'http:' ? 'http' : 'https',
    host: url.host.toLowerCase(),
    hostname: url.hostname.toLowerCase(),
    prefix,
    base: `${url.origin}${prefix}`,
    // github.com redirects www.github.com to itself; a GHES or the simulator has no such alias.
    aliases: url.host.toLowerCase() === 'github.com' ? ['www.github.com'] : [],
  }
}

/** host[:port] of an http(s) authority with the scheme's default port dropped, as URL.host does. */
function normalizeAuthority(scheme: string, authority: string): string {
  const lower = authority.toLowerCase()
  const defaultPort = scheme === 'https' ? ':443' : ':80'
  return lower.endsWith(defaultPort) ? lower.slice(0, -defaultPort.length) : lower
}

/**
 * Splits `owner/repo[.git][/]` and validates both parts. Returns undefined when the path is
 * anything else (extra parts, empty parts, dot segments, bad names).
 */
function parseOwnerRepo(
  path: string,
  allowTrailingSlash: boolean,
): { owner: string; repo: string } | RepoUrlRefusal {
  const trimmed = allowTrailingSlash && path.endsWith('/') ? path.slice(0, -1) : path
  const parts = trimmed.split('/')
  if (parts.length !== 2 || parts.some((part) => part === '')) return 'path'
  const [owner, rawRepo] = parts as [string, string]
  if (owner === '.' || owner === '..' || rawRepo === '.' || rawRepo === '..') return 'path'
  const repo = rawRepo.endsWith('.git') ? rawRepo.slice(0, -'.git'.length) : rawRepo
  if (!OWNER_PATTERN.test(owner) || !REPO_PATTERN.test(repo)) return 'name'
  // A leading '-' would be read by git as an option; '.'/'..' are path traversal.
  if (repo.startsWith('-') || repo === '.' || repo === '..' || repo.endsWith('.git')) return 'name'
  return { owner, repo }
}

/**
 * Parses a repository URL a user typed and pins it to the configured GitHub.
 *
 * Accepted forms (after trimming): `https://HOST/owner/repo` (optional `.git`, optional single
 * trailing `/`; `http://` only when `githubUrl` is http), `git@HOST:owner/repo(.git)` and
 * `ssh://git@HOST/owner/repo(.git)`. HTTP forms compare host[:port] with `githubUrl`; SSH forms
 * compare the hostname only (SSH runs on its own port). When `githubUrl` has a path prefix,
 * HTTP inputs must carry it too.
 *
 * @param githubUrl the configured GitHub web URL, e.g. `https://github.com` or `http://127.0.0.1:4010`.
 * @returns owner and repo as typed, plus an HTTPS-style clone URL and web URL under `githubUrl`.
 * On github.com, `www.github.com` is the same host (GitHub redirects it); URLs are pinned to
 * the configured host either way.
 *
 * @throws {AppError} 400 `INVALID_REPO_URL` for any other input: other hosts or schemes,
 *   credentials, dot segments, percent-encoding, leading `-`, `::`, extra path parts, query or
 *   fragment, whitespace or control characters, invalid owner/repo names, input over 2048 chars.
 *   The message says which of {@link REPO_URL_REFUSALS} applies, never
 *   quoting the input, so credentials pasted in it are not echoed.
 * @throws {TypeError} when `githubUrl` itself is not an http(s) URL (a configuration error).
 */
export function parseRepoUrl(input: string, githubUrl: string): RepoRef {
  const github = parseGitHubUrl(githubUrl)
  if (typeof input !== 'string') throw invalid('format')
  if (input.length > MAX_INPUT_LENGTH) throw invalid('length')
  const text = input.trim()
  if (text === '') throw invalid('format')
  // Cheap blanket bans before any parsing: encodings, queries/fragments, backslashes, remote helpers.
  if (!SAFE_CHARS.test(text) || /[%?#\\]/.test(text) || text.includes('::')) throw invalid('characters')

  let path: string
  let allowTrailingSlash: boolean
  const http = HTTP_FORM.exec(text)
  const sshUrl = SSH_URL_FORM.exec(text)
  const scp = SCP_FORM.exec(text)
  if (http !== null) {
    const [, rawScheme = '', authority = '', rest = ''] = http
    const scheme = rawScheme.toLowerCase()
    // Any '@' means userinfo (credentials, or a github.com@evil.com look-alike).
    if (authority.includes('@')) throw invalid('credentials')
    const host = normalizeAuthority(scheme, authority)
    if (host !== github.host && !github.aliases.includes(host)) throw invalid('host', github)
    if (scheme === 'http' && github.protocol !== 'http') throw invalid('scheme')
    if (!rest.startsWith(`${github.prefix}/`)) throw invalid('path')
    path = rest.slice(github.prefix.length + 1)
    allowTrailingSlash = true
  } else if (sshUrl !== null) {
    const [, host = '', , rest = ''] = sshUrl
    if (host.toLowerCase() !== github.hostname) throw invalid('host', github)
    path = rest
    allowTrailingSlash = true
  } else if (scp !== null) {
    const [, host = '', rest = ''] = scp
    if (host.toLowerCase() !== github.hostname) throw invalid('host', github)
    path = rest
    allowTrailingSlash = false
  } else if (/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(text) || /^[^/:@]+@[^/:]+:/.test(text)) {
    // ssh://user:pw@host/… or root@host:… — a user name or password we do not accept.
    throw invalid('credentials')
  } else {
    throw invalid('format')
  }

  const parsed = parseOwnerRepo(path, allowTrailingSlash)
  if (typeof parsed === 'string') throw invalid(parsed)
  const { owner, repo } = parsed
  const htmlUrl = `${github.base}/${owner}/${repo}`
  return { owner, repo, host: github.host, cloneUrl: `${htmlUrl}.git`, htmlUrl }
}
