import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { inheritedEnv, mapLimit, removeClone } from '@portico/core'

/** Why a clone failed; `permanent` failures are not worth retrying. */
export type CloneFailure =
  | 'unauthorized'
  | 'auth'
  | 'not-found'
  | 'empty'
  | 'network'
  | 'timeout'
  | 'too-large'
  | 'too-many-files'
  | 'cancelled'
  | 'git'

const PERMANENT: ReadonlySet<CloneFailure> = new Set([
  'unauthorized',
  'auth',
  'not-found',
  'empty',
  'timeout',
  'too-large',
  'too-many-files',
  'cancelled',
])

/** The stable `code` stored with each kind of failure. */
export const CLONE_FAILURE_CODES: Record<CloneFailure, string> = {
  // GitHub's 401: the token expired or was revoked (token_status "invalid", issue 14).
  unauthorized: 'TOKEN_EXPIRED',
  auth: 'INVALID_TOKEN',
  'not-found': 'REPOSITORY_NOT_FOUND',
  empty: 'REPOSITORY_EMPTY',
  network: 'GITHUB_UNREACHABLE',
  timeout: 'CLONE_TIMEOUT',
  'too-large': 'REPOSITORY_TOO_LARGE',
  'too-many-files': 'REPOSITORY_TOO_MANY_FILES',
  cancelled: 'CLONE_CANCELLED',
  git: 'CLONE_FAILED',
}

/** A failed clone with a classified reason and a message safe to store (no credentials). */
export class CloneError extends Error {
  readonly kind: CloneFailure
  readonly permanent: boolean
  /** Stable code of the failure ({@link CLONE_FAILURE_CODES}). */
  readonly code: string
  /** git's last `fatal:`/`error:` line, when there was one (may name the URL, never the token). */
  readonly detail: string | undefined
  constructor(kind: CloneFailure, message: string, detail?: string, code?: string) {
    super(message)
    this.name = 'CloneError'
    this.kind = kind
    this.permanent = PERMANENT.has(kind)
    this.code = code ?? CLONE_FAILURE_CODES[kind]
    this.detail = detail
  }
}

export interface CloneOptions {
  /** HTTPS clone URL, without credentials. */
  url: string
  /** Token sent as HTTP Basic password in an extra header passed through the environment. */
  token: string
  /** Final clone directory; replaced atomically once the clone succeeds. */
  dest: string
  timeoutMs: number
  maxBytes: number
  /** Limit on the tree's entries (CLONE_MAX_FILES), checked with the sizes before checkout. */
  maxFiles?: number
  /** Aborting kills git and fails with `cancelled`. */
  signal?: AbortSignal
  /** Overall clone progress 0–100, called when it changes. */
  onProgress?: (percent: number) => void
  /** How often the on-disk size is measured while git runs. */
  sizeCheckMs?: number
}

export interface CloneResult {
  commitSha: string
  /**
   * Bytes on disk after checkout: the tree's blobs (written as committed) plus `.git` for a
   * clone; the staged tree's blobs for a refresh.
   */
  bytes: number
}

// Phase weights of `git clone --progress` output, mapped onto 0–100.
const PHASES: Record<string, [number, number]> = {
  'Enumerating objects': [0, 2],
  'Counting objects': [2, 5],
  'Compressing objects': [5, 10],
  'Receiving objects': [10, 80],
  'Resolving deltas': [80, 92],
  'Updating files': [92, 100],
  'Checking out files': [92, 100],
}
const PROGRESS_LINE = /^(?:remote: )?([A-Z][a-z]+ [a-z]+(?: [a-z]+)?):\s+(\d{1,3})%/
const RECEIVED = /,\s*([\d.]+) (bytes|KiB|MiB|GiB)\b/
const UNITS: Record<string, number> = { bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }

/** Maps one progress line to overall percent and bytes received so far, if it is one. */
export function parseProgressLine(line: string): { percent?: number; receivedBytes?: number } {
  const m = PROGRESS_LINE.exec(line)
  if (!m) return {}
  const phase = PHASES[m[1] ?? '']
  if (!phase) return {}
  const pct = Math.min(100, Number(m[2]))
  const out: { percent?: number; receivedBytes?: number } = {
    percent: Math.floor(phase[0] + ((phase[1] - phase[0]) * pct) / 100),
  }
  const r = RECEIVED.exec(line)
  if (r && m[1] === 'Receiving objects') out.receivedBytes = Number(r[1]) * (UNITS[r[2] ?? 'bytes'] ?? 1)
  return out
}

// git over HTTPS meets GitHub's 401 as a credential prompt it may not show, or "Authentication failed".
const UNAUTHORIZED =
  /terminal prompts disabled|Authentication failed|could not read (?:Username|Password)|Invalid username or password|returned error: 401\b|HTTP 401\b/i
const AUTH_FAILURE = /returned error: 403\b|HTTP 403\b/i
const NOT_FOUND =
  /Repository not found|returned error: 404\b|HTTP 404\b|does not appear to be a git repository/i
const NETWORK =
  /Could not resolve host|Failed to connect|Connection refused|Connection reset|timed out|early EOF|RPC failed|returned error: 5\d\d\b|HTTP 5\d\d\b|transfer closed|unexpected disconnect|remote end hung up|SSL|Empty reply/i

/** Classifies git's stderr after a failed clone. */
export function classifyGitFailure(stderr: string): CloneFailure {
  if (UNAUTHORIZED.test(stderr)) return 'unauthorized'
  if (AUTH_FAILURE.test(stderr)) return 'auth'
  if (NOT_FOUND.test(stderr)) return 'not-found'
  if (NETWORK.test(stderr)) return 'network'
  return 'git'
}

const FAILURE_MESSAGES: Record<CloneFailure, string> = {
  unauthorized:
    'GitHub rejected the token (401): it has expired or was revoked. Replace the PAT, then refresh the connection.',
  auth: 'GitHub rejected the token for this repository (it may have been revoked or expired).',
  'not-found': 'The repository was not found, or the token cannot read it.',
  empty: 'The repository is empty: it has no commits yet. Push a first commit, then connect again.',
  network: 'Could not reach GitHub while cloning.',
  timeout: 'The clone took longer than the time limit.',
  'too-large': 'The repository is larger than the clone size limit.',
  'too-many-files': 'The repository has more files than the clone file limit.',
  cancelled: 'The clone was cancelled.',
  git: 'git clone failed.',
}

/** What git may inherit: how to find programs and a home, proxies, and CA bundles. */
const GIT_INHERITED_ENV = [
  'PATH',
  'HOME',
  'TMPDIR',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
] as const

/**
 * The environment git runs with: nothing inherited that could redirect it (GIT_*, askpass
 * helpers, user/system config with credential helpers), no prompts, no LFS downloads, and the
 * token only in an `http.extraHeader` passed through GIT_CONFIG_* variables, so it is in
 * neither the URL, the arguments nor `.git/config`.
 */
export function gitEnv(token?: string): NodeJS.ProcessEnv {
  // A minimal environment: the worker's own secrets (GH_TOKEN, keys, DATABASE_URL) stay out of git.
  const env: NodeJS.ProcessEnv = inheritedEnv(GIT_INHERITED_ENV)
  const config: [string, string][] = [
    ['credential.helper', ''],
    // A redirect must not carry the Authorization header to another host.
    ['http.followRedirects', 'false'],
    ['submodule.recurse', 'false'],
    ['protocol.file.allow', 'never'],
    ['protocol.ext.allow', 'never'],
    ['core.hooksPath', '/dev/null'],
    // Parallel checkout, one worker per core (git ≥ 2.32; `checkout.workers` in git-config(1)):
    // writing the files was a fifth of a 2,000-file clone's time in `npm run bench -- clone`.
    ['checkout.workers', '0'],
  ]
  if (token !== undefined) {
    const basic = Buffer.from(`x-access-token:${token}`).toString('base64')
    config.push(['http.extraHeader', `Authorization: Basic ${basic}`])
  }
  Object.assign(env, {
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_LFS_SKIP_SMUDGE: '1',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_COUNT: String(config.length),
  })
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key
    env[`GIT_CONFIG_VALUE_${i}`] = value
  })
  return env
}

/** Directories listed (then entries measured) at a time by {@link directorySize}. */
const SIZE_CONCURRENCY = 16

/**
 * Total size in bytes of the files under `dir` (symlinks counted, never followed); unreadable
 * entries count 0. Breadth-first, `SIZE_CONCURRENCY` file-system calls in flight: a serial walk
 * waits out one thread-pool round trip per entry (about 0.5 s for a 2,000-folder checkout).
 */
export async function directorySize(dir: string): Promise<number> {
  let total = 0
  let level = [dir]
  while (level.length > 0) {
    const listed = await mapLimit(level, SIZE_CONCURRENCY, async (current) => {
      const dirs: string[] = []
      const others: string[] = []
      const entries = await readdir(current, { withFileTypes: true }).catch(() => [])
      for (const entry of entries) (entry.isDirectory() ? dirs : others).push(path.join(current, entry.name))
      return { dirs, others }
    })
    const others = listed.flatMap((l) => l.others)
    const sizes = await mapLimit(others, SIZE_CONCURRENCY, (file) =>
      lstat(file).then(
        (s) => s.size,
        () => 0,
      ),
    )
    for (const size of sizes) total += size
    level = listed.flatMap((l) => l.dirs)
  }
  return total
}

/** Runs git to completion and returns its stdout; used for the token-free follow-up commands. */
async function runGit(args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  const child = spawn('git', args, {
    cwd,
    env: { ...gitEnv(), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  // git's own words stay in `detail` (logged), never in the stored message.
  if (code !== 0)
    throw new CloneError('git', `git ${args[0]} failed.`, err.trim().split('\n').at(-1)?.slice(0, 200))
  return out.trim()
}

/**
 * Entries and total blob bytes of HEAD's tree, from `git ls-tree -r -l HEAD` (lines
 * `<mode> <type> <object> <size>\t<path>`; submodules have size `-`).
 */
export async function treeSize(repoDir: string, rev = 'HEAD'): Promise<{ entries: number; bytes: number }> {
  const listing = await runGit(['ls-tree', '-r', '-l', '-z', rev], repoDir)
  let entries = 0
  let bytes = 0
  for (const record of listing.split('\0')) {
    if (record === '') continue
    entries += 1
    const size = Number(record.slice(0, record.indexOf('\t')).trim().split(/ +/)[3])
    if (Number.isFinite(size)) bytes += size
  }
  return { entries, bytes }
}

function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return
  try {
    // git runs in its own process group: this also stops git-remote-https and index-pack.
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
}

/**
 * Shallow-clones one branch (the remote's default) into `dest`: `--depth 1 --single-branch
 * --no-tags`, no submodules, no LFS content. git writes into a fresh sibling directory that is
 * renamed onto `dest` only on success, so a crashed earlier attempt (even a still-running orphan
 * git) can never mix with this one. Bounded by `timeoutMs` and `maxBytes`.
 *
 * @throws {CloneError} classified; the message never contains the token or git's raw output.
 */
export async function cloneRepository(opts: CloneOptions): Promise<CloneResult> {
  await removeClone(opts.dest)
  await mkdir(path.dirname(opts.dest), { recursive: true })
  const work = `${opts.dest}.partial-${randomBytes(6).toString('hex')}`
  // No checkout: the tree listing is checked against the limits before any file is written.
  const args = [
    'clone',
    '--depth',
    '1',
    '--single-branch',
    '--no-tags',
    '--no-checkout',
    '--progress',
    '--',
    opts.url,
    work,
  ]
  try {
    const { stderr } = await runTransfer(args, undefined, work, opts)
    // git clones an empty repository successfully ("You appear to have cloned an empty
    // repository.") and only `rev-parse HEAD` fails later; retrying cannot change that.
    const commitSha = await runGit(['rev-parse', '--verify', '--quiet', 'HEAD'], work).catch(() => '')
    if (commitSha === '') {
      const empty = /cloned an empty repository/i.test(stderr)
      throw new CloneError(empty ? 'empty' : 'git', FAILURE_MESSAGES[empty ? 'empty' : 'git'])
    }
    const tree = await checkTree(work, 'HEAD', opts)
    await checkOutAsCommitted(path.join(work, '.git'))
    await runGit(['reset', '--quiet', '--hard', 'HEAD'], work)
    // The files are the blobs as committed, so the tree's size is theirs: only .git is measured.
    const bytes = tree.bytes + (await directorySize(path.join(work, '.git')))
    if (bytes > opts.maxBytes) throw new CloneError('too-large', FAILURE_MESSAGES['too-large'])
    await rename(work, opts.dest)
    return { commitSha, bytes }
  } catch (err) {
    await rm(work, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 })
    throw err instanceof CloneError ? err : new CloneError('git', FAILURE_MESSAGES.git)
  }
}

/**
 * Refuses a tree over the file or size limits (from `git ls-tree`, before any checkout).
 * @returns the tree's entries and blob bytes.
 */
async function checkTree(
  repoDir: string,
  rev: string,
  opts: Pick<CloneOptions, 'maxBytes' | 'maxFiles'>,
): Promise<{ entries: number; bytes: number }> {
  const tree = await treeSize(repoDir, rev)
  if (opts.maxFiles !== undefined && tree.entries > opts.maxFiles) {
    throw new CloneError('too-many-files', FAILURE_MESSAGES['too-many-files'])
  }
  if (tree.bytes > opts.maxBytes) throw new CloneError('too-large', FAILURE_MESSAGES['too-large'])
  return tree
}

/**
 * Attributes that unset every checkout conversion (end of line, `ident`, `working-tree-encoding`,
 * filters) for every path. `$GIT_DIR/info/attributes` outranks the repository's own
 * `.gitattributes`, so the files written are the blobs byte for byte: no repository can make its
 * checkout larger than its tree (`ident` alone grows `$Id$` twelvefold).
 */
const AS_COMMITTED_ATTRIBUTES = '* -text -eol -crlf -ident -filter -working-tree-encoding\n'

/** Makes checkouts from the repository at `gitDir` write files exactly as committed. */
async function checkOutAsCommitted(gitDir: string): Promise<void> {
  await mkdir(path.join(gitDir, 'info'), { recursive: true })
  await writeFile(path.join(gitDir, 'info', 'attributes'), AS_COMMITTED_ATTRIBUTES)
}

/**
 * Runs one git command that talks to GitHub (clone, fetch) with the token in its environment
 * only, in its own process group, bounded by `timeoutMs`, `maxBytes` (bytes received as git
 * reports them, and `sizeDir` measured every `sizeCheckMs`) and `signal`.
 * @returns git's stderr (progress lines removed) on success.
 * @throws {CloneError} classified from git's output or the limit that stopped it.
 */
async function runTransfer(
  args: string[],
  cwd: string | undefined,
  sizeDir: string,
  opts: Pick<CloneOptions, 'token' | 'timeoutMs' | 'maxBytes' | 'signal' | 'onProgress' | 'sizeCheckMs'>,
): Promise<{ stderr: string }> {
  const child = spawn('git', args, {
    cwd,
    env: gitEnv(opts.token),
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  let failure: CloneFailure | undefined
  const abort = (kind: CloneFailure) => {
    failure ??= kind
    killTree(child)
  }
  let stderrTail = ''
  let buffered = ''
  let lastPercent = -1
  child.stderr?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split(/[\r\n]/)
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      if (line === '') continue
      const { percent, receivedBytes } = parseProgressLine(line)
      if (percent === undefined) stderrTail = `${stderrTail}${line}\n`.slice(-4000)
      else if (percent > lastPercent) {
        lastPercent = percent
        opts.onProgress?.(percent)
      }
      if (receivedBytes !== undefined && receivedBytes > opts.maxBytes) abort('too-large')
    }
  })
  const timer = setTimeout(() => abort('timeout'), opts.timeoutMs)
  const onAbort = () => abort('cancelled')
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  if (opts.signal?.aborted) onAbort()
  let measuring = false
  const sizeTimer = setInterval(() => {
    if (measuring) return
    measuring = true
    directorySize(sizeDir)
      .then((size) => {
        if (size > opts.maxBytes) abort('too-large')
      })
      .finally(() => {
        measuring = false
      })
  }, opts.sizeCheckMs ?? 1000)
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (c) => resolve(c))
    })
    const stderr = `${stderrTail}${buffered}`
    if (failure === undefined && code !== 0) failure = classifyGitFailure(stderr)
    if (failure === undefined && (await directorySize(sizeDir)) > opts.maxBytes) failure = 'too-large'
    if (failure !== undefined) {
      const detail = [...stderrTail.matchAll(/(?:fatal|error): .*/g)].at(-1)?.[0]
      throw new CloneError(failure, FAILURE_MESSAGES[failure], detail)
    }
    return { stderr }
  } finally {
    clearTimeout(timer)
    clearInterval(sizeTimer)
    opts.signal?.removeEventListener('abort', onAbort)
  }
}

/** A branch name as GitHub reports it, safe to put in a refspec (no option, no `..`, no specials). */
const BRANCH_NAME = /^(?!-)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]{1,255}(?<![./])$/

export interface FetchOptions extends Omit<CloneOptions, 'dest'> {
  /** An existing clone (made by {@link cloneRepository}); it stays untouched until {@link promoteStaged}. */
  repoDir: string
  /** Branch to fetch (the repository's default branch, as GitHub reports it now). */
  branch: string
  /** Fresh directory the new commit's files are written into (a `.partial-` sibling of `repoDir`). */
  stageDir: string
}

/**
 * Refreshes an existing clone without disturbing it: `git fetch --depth 1 --no-tags` of the
 * branch into the clone's object store (the token only in git's environment, as for the clone:
 * never in the URL, argv or `.git/config`; the URL is given on the command line so the stored
 * remote is not needed), the new tree checked against the limits, then its files written into
 * `stageDir` through a separate index (`GIT_INDEX_FILE`), so the old working tree, index and
 * HEAD stay as they were until {@link promoteStaged}.
 * @throws {CloneError} classified; the message never contains the token or git's raw output.
 */
export async function fetchLatest(opts: FetchOptions): Promise<CloneResult> {
  if (!BRANCH_NAME.test(opts.branch))
    throw new CloneError('git', 'The default branch name cannot be fetched.')
  const args = [
    'fetch',
    '--depth',
    '1',
    '--no-tags',
    '--no-write-fetch-head',
    '--progress',
    '--',
    opts.url,
    `+refs/heads/${opts.branch}:${REFRESH_REF}`,
  ]
  try {
    await runTransfer(args, opts.repoDir, opts.repoDir, opts)
    const commitSha = await runGit(
      ['rev-parse', '--verify', '--quiet', `${REFRESH_REF}^{commit}`],
      opts.repoDir,
    )
    const tree = await checkTree(opts.repoDir, commitSha, opts)
    // Clones made before the attributes existed get them too: the staged files are the blobs.
    await checkOutAsCommitted(path.join(opts.repoDir, '.git'))
    await mkdir(opts.stageDir)
    const index = path.join(opts.repoDir, '.git', STAGE_INDEX)
    await rm(index, { force: true })
    const env = { GIT_INDEX_FILE: index }
    await runGit([`--work-tree=${opts.stageDir}`, 'read-tree', commitSha], opts.repoDir, env)
    await runGit([`--work-tree=${opts.stageDir}`, 'checkout-index', '--all', '--force'], opts.repoDir, env)
    return { commitSha, bytes: tree.bytes }
  } catch (err) {
    await rm(opts.stageDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 })
    throw err instanceof CloneError ? err : new CloneError('git', FAILURE_MESSAGES.git)
  }
}

/** Where a refresh's fetch lands (not a branch: the clone's own refs stay as they were). */
const REFRESH_REF = 'refs/portico/refresh'
/** The staged tree's index inside the clone's `.git` until it is promoted. */
const STAGE_INDEX = 'portico-refresh-index'

/**
 * Makes a staged refresh ({@link fetchLatest}) the clone: HEAD's branch moves to the fetched
 * commit, the staged index becomes the index, `.git` moves into the staged tree and the staged
 * tree takes the clone's place (two renames; the old tree is removed after). Everything is local
 * and quick; a crash in between leaves `.partial-` directories the sweeps remove.
 */
export async function promoteStaged(repoDir: string, stageDir: string, commitSha: string): Promise<void> {
  await runGit(['update-ref', 'HEAD', commitSha], repoDir)
  await rename(path.join(repoDir, '.git', STAGE_INDEX), path.join(repoDir, '.git', 'index'))
  await rename(path.join(repoDir, '.git'), path.join(stageDir, '.git'))
  const old = `${repoDir}.partial-old-${randomBytes(6).toString('hex')}`
  await rename(repoDir, old)
  await rename(stageDir, repoDir)
  await rm(old, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 })
}

/** Whether `dir` holds a clone with a commit checked out (a refresh can then fetch into it). */
export async function hasClone(dir: string): Promise<boolean> {
  return runGit(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], dir).then(
    (sha) => sha !== '',
    () => false,
  )
}
