import { createHash } from 'node:crypto'
import type { Octokit } from '@octokit/rest'
import { AppError } from '@portico/core'
import { statusOf, toGithubAppError } from './github-errors.js'
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

/** A small LRU map: the oldest entry goes when the map is full. */
class Lru<V> {
  readonly #map = new Map<string, V>()
  constructor(readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.#map.get(key)
    if (v !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, v)
    }
    return v
  }
  set(key: string, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as string)
  }
  delete(key: string): void {
    this.#map.delete(key)
  }
  clear(): void {
    this.#map.clear()
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const run = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run))
  return out
}

/**
 * Reads pods from the specs repository with as few counted GitHub calls as possible.
 *
 * Responses are cached with their ETag and every use revalidates with `If-None-Match` using the
 * CALLER's token: a 304 costs nothing against the rate limit, and a caller who lost access gets
 * GitHub's 404 instead of the cached answer. Repository metadata (whose body depends on the
 * caller's permissions) is cached per token hash; the tree listing, identical for everyone who
 * can read it, per repository and branch.
 */
export class PodCatalog {
  readonly location: SpecsLocation
  readonly #repoInfo: Lru<Cached<SpecsRepoInfo>>
  readonly #trees: Lru<Cached<PodRef[]>>

  constructor(location: SpecsLocation, opts: { maxEntries?: number } = {}) {
    this.location = location
    this.#repoInfo = new Lru(opts.maxEntries ?? 1000)
    this.#trees = new Lru(32)
  }

  /** `owner/repo` of the specs repository. */
  get fullName(): string {
    return `${this.location.owner}/${this.location.repo}`
  }

  /** Drops every cached response (`POST /api/refresh`). */
  clear(): void {
    this.#repoInfo.clear()
    this.#trees.clear()
  }

  /**
   * Conditional GET: returns the cached value on 304, else stores and returns `parse(data)`.
   * Errors (including 404 for a caller without access) propagate and evict the entry.
   */
  async #conditional<T>(
    octokit: Octokit,
    cache: Lru<Cached<T>>,
    key: string,
    route: string,
    params: Record<string, unknown>,
    parse: (data: unknown) => Promise<T> | T,
  ): Promise<T> {
    const cached = cache.get(key)
    try {
      const res = await octokit.request(route, {
        ...params,
        request: READ,
        headers: cached ? { 'if-none-match': cached.etag } : {},
      })
      const value = await parse(res.data)
      const etag = res.headers.etag
      if (typeof etag === 'string') cache.set(key, { etag, value })
      else cache.delete(key)
      return value
    } catch (err) {
      if (statusOf(err) === 304 && cached) return cached.value
      cache.delete(key)
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
      throw toGithubAppError(
        err,
        () =>
          new AppError(
            404,
            'SPECS_REPO_NOT_FOUND',
            `Repository ${this.fullName} was not found or is not readable with this GitHub account`,
          ),
      )
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
      throw toGithubAppError(
        err,
        () =>
          new AppError(
            404,
            'SPECS_REPO_NOT_FOUND',
            `Repository ${this.fullName} or its branch ${branch} was not found or is not readable with this GitHub account`,
          ),
      )
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
   * One pod's spec, parsed with limits (one contents call). Absent, a directory, or empty →
   * 404 `POD_NOT_FOUND`; too large or malformed → 422.
   */
  async getSpec(octokit: Octokit, pod: PodRef): Promise<PodSpec> {
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
      throw toGithubAppError(err, notFound)
    }
    if (Array.isArray(data) || data.type !== 'file') throw notFound()
    if ((data.size ?? 0) > SPEC_MAX_BYTES) {
      throw new AppError(
        422,
        'SPEC_TOO_LARGE',
        `Spec for ${where} is too large (${data.size} bytes; the limit is ${SPEC_MAX_BYTES})`,
      )
    }
    const text = Buffer.from(data.content ?? '', 'base64').toString('utf8')
    if (text.trim() === '') throw notFound()
    const { value } = parseSpecYaml(text, where)
    if (value === null) throw notFound()
    return { ...pod, spec: value as Record<string, unknown>, path, sha: data.sha ?? '', etag }
  }
}
