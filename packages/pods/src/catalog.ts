import { createHash } from 'node:crypto'
import type { Octokit } from '@octokit/rest'
import {
  AppError,
  githubErrorStatus,
  githubErrorToAppError,
  mapLimit,
  type SingleFlight,
  singleFlight,
} from '@portico/core'
import { LRUCache } from 'lru-cache'
import { parseSpecYaml, SPEC_MAX_BYTES } from './spec-yaml.js'
import { type PodRef, sortPods } from './validation.js'

/** Where the specs live: `{specsPath}/{customer}/{env}/spec.yml` on `branch` of `owner/repo`. */
export interface SpecsLocation {
  owner: string
  repo: string
  branch: string
  specsPath: string
}

/** What the org gate needs to know about the specs repository. */
export interface SpecsRepoInfo {
  owner: string
  private: boolean
}

/** A pod and its parsed spec. */
export interface PodSpec extends PodRef {
  spec: Record<string, unknown>
  /** Path of the spec file in the specs repository. */
  path: string
  /** Git blob sha of the spec file. */
  sha: string
  /** GitHub's ETag of the contents response, null when it sent none. */
  etag: string | null
}

/**
 * A pod whose `spec.yml` exists but holds no document: zero bytes, only whitespace or comments,
 * or a bare `null`. The pod exists (it is listed, `mode: "new"` is 409) but has no valid spec:
 * reading it is 422 `INVALID_SPEC`; a deploy replaces the file.
 */
export interface EmptyPodSpec extends Omit<PodSpec, 'spec'> {
  spec: null
}

interface TreeEntry {
  path?: string
  type?: string
  sha?: string
}

interface Cached<T> {
  etag: string
  value: T
}

const NAME = /^[a-zA-Z0-9_-]{1,50}$/
const WALK_CONCURRENCY = 6
/**
 * Reads answer people waiting on a page: no in-process retries with second-long backoffs (a
 * transient failure is a prompt 503 the client may retry). Only 0 is safe per request: the retry
 * plugin's limiter would otherwise also repeat 304s.
 */
const READ = { retries: 0 }

/**
 * Where cached responses are shared between API processes: Redis keys `{prefix}:pods-cache:…`
 * holding `{ etag, value }` JSON (never a token: per-caller entries are keyed by a token hash).
 * Every use still revalidates with the CALLER's token, so a shared entry is only ever served
 * after GitHub answered 304 to that caller.
 */
export interface SharedCache {
  /** An ioredis client (the API's own connection). */
  redis: {
    get(key: string): Promise<string | null>
    set(key: string, value: string, ex: 'EX', seconds: number): Promise<unknown>
    scan(
      cursor: string,
      match: 'MATCH',
      pattern: string,
      count: 'COUNT',
      n: number,
    ): Promise<[string, string[]]>
    del(...keys: string[]): Promise<number>
  }
  prefix: string
  /** Seconds an entry lives in Redis without being refreshed (default one day). */
  ttlSeconds?: number
}

/** One cache: this process's LRU in front of the optional shared Redis store. */
class TieredCache<T> {
  readonly #local: LRUCache<string, Cached<T>>
  readonly #name: string
  readonly #shared: SharedCache | undefined

  constructor(name: string, max: number, shared?: SharedCache) {
    this.#name = name
    this.#local = new LRUCache({ max })
    this.#shared = shared
  }

  #key(key: string): string {
    return `${this.#shared?.prefix}:pods-cache:${this.#name}:${key}`
  }

  async get(key: string): Promise<Cached<T> | undefined> {
    const local = this.#local.get(key)
    if (local || !this.#shared) return local
    // A Redis failure only costs the cache: the caller then asks GitHub without an ETag.
    const raw = await this.#shared.redis.get(this.#key(key)).catch(() => null)
    if (!raw) return undefined
    try {
      const entry = JSON.parse(raw) as Cached<T>
      if (typeof entry.etag !== 'string') return undefined
      this.#local.set(key, entry)
      return entry
    } catch {
      return undefined
    }
  }

  async set(key: string, entry: Cached<T>): Promise<void> {
    const previous = this.#local.get(key)
    this.#local.set(key, entry)
    if (!this.#shared || previous?.etag === entry.etag) return
    const ttl = this.#shared.ttlSeconds ?? 86_400
    await this.#shared.redis.set(this.#key(key), JSON.stringify(entry), 'EX', ttl).catch(() => {})
  }

  /** Forgets this process's copy; a shared copy stays (it is revalidated before any use). */
  delete(key: string): void {
    this.#local.delete(key)
  }

  /** Forgets this process's copies. */
  forget(): void {
    this.#local.clear()
  }

  /** Deletes the shared copies. */
  async clearShared(): Promise<void> {
    if (!this.#shared) return
    const { redis } = this.#shared
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', this.#key('*'), 'COUNT', 500)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  }
}

/**
 * Reads pods from the specs repository with as few counted GitHub calls as possible.
 *
 * Responses are cached with their ETag and every use revalidates with `If-None-Match` using the
 * CALLER's token: a 304 costs nothing against the rate limit, and a caller who lost access gets
 * GitHub's 404 instead of the cached answer. Repository metadata (whose body depends on the
 * caller's permissions) is cached per token hash; the tree listing, identical for everyone who
 * can read it, per repository and branch. With `shared`, entries are also kept in Redis so that
 * N API processes pay for one cold listing, not N.
 */
export class PodCatalog {
  readonly location: SpecsLocation
  readonly #repoInfo: TieredCache<SpecsRepoInfo>
  readonly #trees: TieredCache<PodRef[]>
  readonly #revalidateAfterMs: number
  readonly #confirmationsTrusted: () => boolean
  /**
   * Per caller (its Octokit, one per signed-in session): which cached answer GitHub last confirmed
   * to that caller, and when. Within `revalidateAfterMs` the caller is served without asking again.
   */
  #confirmed = new WeakMap<object, Map<string, { etag: string; at: number }>>()
  /**
   * Per caller: the GitHub requests in flight, shared by that caller's concurrent reads of the
   * same key (a page's parallel reads, or a poller, when its window ends: one conditional request,
   * not one each). Bumped by {@link clear}: reads after a refresh do not join a request from before.
   */
  #inflight = new WeakMap<object, SingleFlight<unknown>>()
  #generation = 0

  /**
   * @param opts.revalidateAfterMs how long a caller's own confirmation of a cached answer stands
   *   (ms, default 0: every use revalidates). A caller who loses access on GitHub is served what
   *   they could read for at most this long.
   * @param opts.confirmationsTrusted while it returns false, confirmations are neither served nor
   *   kept (every use revalidates): the API passes whether it would hear of a refresh in another
   *   process (its refresh channel is subscribed and answering). Default: always true.
   */
  constructor(
    location: SpecsLocation,
    opts: {
      maxEntries?: number
      shared?: SharedCache
      revalidateAfterMs?: number
      confirmationsTrusted?: () => boolean
    } = {},
  ) {
    this.location = location
    this.#repoInfo = new TieredCache('repo', opts.maxEntries ?? 1000, opts.shared)
    this.#trees = new TieredCache('tree', 32, opts.shared)
    this.#revalidateAfterMs = opts.revalidateAfterMs ?? 0
    this.#confirmationsTrusted = opts.confirmationsTrusted ?? (() => true)
  }

  /** `owner/repo` of the specs repository. */
  get fullName(): string {
    return `${this.location.owner}/${this.location.repo}`
  }

  /**
   * Drops this process's copies and every caller's confirmations, and keeps answers already on
   * their way from being stored: what a refresh in another API process asks of this one.
   */
  forget(): void {
    this.#confirmed = new WeakMap()
    this.#generation += 1
    this.#repoInfo.forget()
    this.#trees.forget()
  }

  /**
   * Drops every cached response (`POST /api/refresh`), shared ones included. This process's
   * copies go at once ({@link forget}); the returned promise settles when Redis is cleared too.
   * Other API processes are told to {@link forget} by the caller (the API's refresh channel).
   */
  clear(): Promise<void> {
    this.forget()
    return Promise.all([this.#repoInfo.clearShared(), this.#trees.clearShared()]).then(() => {})
  }

  /**
   * Conditional GET: returns the cached value on 304, else stores and returns `parse(data)`.
   * Errors (including 404 for a caller without access) propagate and evict the entry.
   */
  async #conditional<T>(
    octokit: Octokit,
    cache: TieredCache<T>,
    key: string,
    route: string,
    params: Record<string, unknown>,
    parse: (data: unknown) => Promise<T> | T,
  ): Promise<T> {
    const cached = await cache.get(key)
    const seen = this.#confirmed.get(octokit)?.get(key)
    if (
      cached &&
      seen &&
      seen.etag === cached.etag &&
      Date.now() - seen.at < this.#revalidateAfterMs &&
      this.#confirmationsTrusted()
    ) {
      return cached.value
    }
    let inflight = this.#inflight.get(octokit)
    if (!inflight) {
      inflight = singleFlight()
      this.#inflight.set(octokit, inflight)
    }
    return inflight.run(`${route} ${key}`, this.#generation, () =>
      this.#revalidate(octokit, cache, key, cached, route, params, parse),
    ) as Promise<T>
  }

  /** {@link #conditional}'s request to GitHub, shared by one caller's concurrent reads of `key`. */
  async #revalidate<T>(
    octokit: Octokit,
    cache: TieredCache<T>,
    key: string,
    cached: Awaited<ReturnType<TieredCache<T>['get']>>,
    route: string,
    params: Record<string, unknown>,
    parse: (data: unknown) => Promise<T> | T,
  ): Promise<T> {
    // An answer that arrives after a refresh ({@link clear}) is given to the reads that asked
    // before it but neither stored nor taken as confirmed: it may predate what the refresh was for.
    const generation = this.#generation
    const current = () => generation === this.#generation
    let confirmed = this.#confirmed.get(octokit)
    const remember = (etag: string) => {
      if (this.#revalidateAfterMs <= 0 || !current() || !this.#confirmationsTrusted()) return
      if (!confirmed) {
        confirmed = new Map()
        this.#confirmed.set(octokit, confirmed)
      }
      confirmed.set(key, { etag, at: Date.now() })
    }
    try {
      const res = await octokit.request(route, {
        ...params,
        request: READ,
        headers: cached ? { 'if-none-match': cached.etag } : {},
      })
      const value = await parse(res.data)
      const etag = res.headers.etag
      if (!current()) return value
      if (typeof etag === 'string') await cache.set(key, { etag, value })
      else cache.delete(key)
      if (typeof etag === 'string') remember(etag)
      return value
    } catch (err) {
      if (githubErrorStatus(err) === 304 && cached) {
        remember(cached.etag)
        return cached.value
      }
      cache.delete(key)
      confirmed?.delete(key)
      throw err
    }
  }

  /**
   * The specs repository's owner and visibility as the caller sees it (for the org gate).
   * 404 → `SPECS_REPO_NOT_FOUND` (absent, or invisible to this token).
   */
  async repoInfo(octokit: Octokit, token: string): Promise<SpecsRepoInfo> {
    const key = createHash('sha256').update(token).digest('hex')
    const { owner, repo } = this.location
    try {
      return await this.#conditional(
        octokit,
        this.#repoInfo,
        key,
        'GET /repos/{owner}/{repo}',
        { owner, repo },
        (data) => {
          const d = data as { owner?: { login?: string }; private?: boolean }
          return { owner: d.owner?.login ?? owner, private: d.private === true }
        },
      )
    } catch (err) {
      throw githubErrorToAppError(err, {
        notFound: () =>
          new AppError(
            404,
            'SPECS_REPO_NOT_FOUND',
            `Repository ${this.fullName} was not found or is not readable with this GitHub account`,
          ),
      })
    }
  }

  /**
   * Every pod (`{specsPath}/*\/*\/spec.yml`) on the branch, sorted. One recursive tree call;
   * when GitHub truncates it, the specs folder is walked instead.
   */
  async list(octokit: Octokit): Promise<PodRef[]> {
    const { owner, repo, branch } = this.location
    try {
      return await this.#conditional(
        octokit,
        this.#trees,
        `${owner}/${repo}@${branch}`,
        'GET /repos/{owner}/{repo}/git/trees/{tree_sha}',
        { owner, repo, tree_sha: branch, recursive: '1' },
        async (data) => {
          const d = data as { sha: string; truncated?: boolean; tree: TreeEntry[] }
          const pods = d.truncated ? await this.#walk(octokit, d.sha) : this.#fromRecursive(d.tree, '')
          return sortPods(pods)
        },
      )
    } catch (err) {
      throw githubErrorToAppError(err, {
        notFound: () =>
          new AppError(
            404,
            'SPECS_REPO_NOT_FOUND',
            `Repository ${this.fullName} or its branch ${branch} was not found or is not readable with this GitHub account`,
          ),
      })
    }
  }

  /** Pods among recursive tree entries whose paths are relative to `base` ('' = repository root). */
  #fromRecursive(entries: TreeEntry[], base: string): PodRef[] {
    const prefix = base === '' ? `${this.location.specsPath}/` : ''
    const pods: PodRef[] = []
    for (const e of entries) {
      if (e.type !== 'blob' || !e.path?.startsWith(prefix)) continue
      const parts = e.path.slice(prefix.length).split('/')
      const [customer, env, file] = base === '' ? parts : [base, ...parts]
      if (file !== 'spec.yml' || parts.length !== (base === '' ? 3 : 2)) continue
      if (customer && env && NAME.test(customer) && NAME.test(env)) pods.push({ customer, env })
    }
    return pods
  }

  async #tree(octokit: Octokit, sha: string, recursive: boolean) {
    const { owner, repo } = this.location
    const res = await octokit.request('GET /repos/{owner}/{repo}/git/trees/{tree_sha}', {
      request: READ,
      owner,
      repo,
      tree_sha: sha,
      ...(recursive ? { recursive: '1' } : {}),
    })
    return res.data as { sha: string; truncated?: boolean; tree: TreeEntry[] }
  }

  /**
   * Fallback for truncated trees: resolve the specs folder level by level, then fetch each
   * customer's subtree (recursively, or level by level when that is truncated too).
   */
  async #walk(octokit: Octokit, rootSha: string): Promise<PodRef[]> {
    let sha = rootSha
    for (const segment of this.location.specsPath.split('/')) {
      const entry = (await this.#tree(octokit, sha, false)).tree.find(
        (e) => e.path === segment && e.type === 'tree',
      )
      if (!entry?.sha) return []
      sha = entry.sha
    }
    const customers = (await this.#tree(octokit, sha, false)).tree.filter(
      (e) => e.type === 'tree' && e.sha && NAME.test(e.path ?? ''),
    )
    const perCustomer = await mapLimit(customers, WALK_CONCURRENCY, async (c) => {
      const customer = c.path as string
      const sub = await this.#tree(octokit, c.sha as string, true)
      if (!sub.truncated) return this.#fromRecursive(sub.tree, customer)
      const envs = (await this.#tree(octokit, c.sha as string, false)).tree.filter(
        (e) => e.type === 'tree' && e.sha && NAME.test(e.path ?? ''),
      )
      const found = await mapLimit(envs, WALK_CONCURRENCY, async (e) => {
        const files = await this.#tree(octokit, e.sha as string, false)
        return files.tree.some((f) => f.path === 'spec.yml' && f.type === 'blob')
          ? [{ customer, env: e.path as string }]
          : []
      })
      return found.flat()
    })
    return perCustomer.flat()
  }

  /**
   * One pod's spec, parsed with limits (one contents call). Absent or a directory → 404
   * `POD_NOT_FOUND`; too large or malformed → 422; present but empty (no document: zero bytes,
   * whitespace or comments only) → 422 `INVALID_SPEC`, as the pod exists (it is listed) but its
   * spec is not valid.
   */
  async getSpec(octokit: Octokit, pod: PodRef): Promise<PodSpec> {
    const current = await this.currentSpec(octokit, pod)
    if (current.spec === null) {
      throw new AppError(
        422,
        'INVALID_SPEC',
        `Spec for ${pod.customer}/${pod.env} is not valid: the document is empty`,
      )
    }
    return current
  }

  /**
   * What a deploy starts from: {@link getSpec}, except that a present but empty spec comes back
   * with `spec: null` (the pod exists; the deploy replaces the file) instead of a 422.
   */
  async currentSpec(octokit: Octokit, pod: PodRef): Promise<PodSpec | EmptyPodSpec> {
    const { owner, repo, branch, specsPath } = this.location
    const where = `${pod.customer}/${pod.env}`
    const notFound = () => new AppError(404, 'POD_NOT_FOUND', `Pod not found: ${where}`)
    const path = `${specsPath}/${pod.customer}/${pod.env}/spec.yml`
    let data: { type?: string; content?: string; encoding?: string; size?: number; sha?: string }
    let etag: string | null = null
    try {
      const res = await octokit.request('GET /repos/{owner}/{repo}/contents/{path}', {
        request: READ,
        owner,
        repo,
        path,
        ref: branch,
      })
      data = res.data as typeof data
      etag = typeof res.headers.etag === 'string' ? res.headers.etag : null
    } catch (err) {
      throw githubErrorToAppError(err, { notFound })
    }
    if (Array.isArray(data) || data.type !== 'file') throw notFound()
    if ((data.size ?? 0) > SPEC_MAX_BYTES) {
      throw new AppError(
        422,
        'SPEC_TOO_LARGE',
        `Spec for ${where} is too large (${data.size} bytes; the limit is ${SPEC_MAX_BYTES})`,
      )
    }
    const found = { ...pod, path, sha: data.sha ?? '', etag }
    // An empty file is `size: 0, content: ""`: a file that exists, not an absent pod.
    const text = Buffer.from(data.content ?? '', 'base64').toString('utf8')
    if (text.trim() === '') return { ...found, spec: null }
    const { value } = parseSpecYaml(text, where)
    if (value === null) return { ...found, spec: null }
    return { ...found, spec: value as Record<string, unknown> }
  }
}
