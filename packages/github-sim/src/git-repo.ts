import { mkdir } from 'node:fs/promises'
import { git } from './git.js'

export interface TreeEntry {
  mode: string
  type: 'blob' | 'tree' | 'commit'
  sha: string
  size?: number
  path: string
}

export interface Identity {
  name: string
  email: string
  date: string
}

export interface CommitInfo {
  sha: string
  tree: string
  parents: string[]
  author: Identity
  committer: Identity
  message: string
}

/** A change applied to a tree: set a path to a blob (or delete it with `sha: null`). */
export interface TreeChange {
  path: string
  mode?: string
  type?: 'blob' | 'tree' | 'commit'
  sha: string | null
}

const SHA_RE = /^[0-9a-f]{40}$/

/** A bare repository on disk, read and written only through git plumbing. */
export class GitRepo {
  #lock: Promise<unknown> = Promise.resolve()

  constructor(
    readonly dir: string,
    readonly home: string,
  ) {}

  #git(args: string[], input?: string | Buffer, env?: Record<string, string>, okCodes?: number[]) {
    return git(args, { cwd: this.dir, home: this.home, input, env, okCodes })
  }

  async #text(args: string[], input?: string | Buffer, env?: Record<string, string>): Promise<string> {
    return (await this.#git(args, input, env)).stdout.toString('utf8').trim()
  }

  /** Serialises writes so concurrent ref updates can't interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn)
    this.#lock = run.catch(() => {})
    return run
  }

  async init(defaultBranch: string): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await this.#git(['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`, '.'])
    await this.#git(['config', 'uploadpack.allowFilter', 'true'])
    await this.#git(['config', 'uploadpack.allowAnySHA1InWant', 'true'])
  }

  async setHead(branch: string): Promise<void> {
    await this.#git(['symbolic-ref', 'HEAD', `refs/heads/${branch}`])
  }

  /** Resolves a ref name or sha to an object sha of the given type, or null. */
  async resolve(rev: string, type: 'commit' | 'tree' | 'blob' | 'any' = 'commit'): Promise<string | null> {
    if (rev.startsWith('-') || rev.includes('..')) return null
    const spec = type === 'any' ? rev : `${rev}^{${type}}`
    const { stdout, code } = await this.#git(
      ['rev-parse', '--verify', '--quiet', '--end-of-options', spec],
      undefined,
      undefined,
      [0, 1, 128],
    )
    const sha = stdout.toString('utf8').trim()
    return code === 0 && SHA_RE.test(sha) ? sha : null
  }

  /** Resolves `ref` like GitHub's `?ref=`: branch, tag, full ref or sha. */
  async resolveCommitish(ref: string): Promise<string | null> {
    for (const candidate of [`refs/heads/${ref}`, `refs/tags/${ref}`, ref]) {
      if (candidate === ref && !SHA_RE.test(ref) && !ref.startsWith('refs/') && !/^[0-9a-f]{7,40}$/.test(ref))
        continue
      const sha = await this.resolve(candidate)
      if (sha) return sha
    }
    return null
  }

  async objectType(sha: string): Promise<string | null> {
    if (!/^[0-9a-f]{4,40}$/.test(sha)) return null
    const { stdout, code } = await this.#git(['cat-file', '-t', sha], undefined, undefined, [0, 1, 128])
    return code === 0 ? stdout.toString('utf8').trim() : null
  }

  /** All refs under `prefix` (e.g. `refs/heads/`), sorted by name. */
  async listRefs(prefix = 'refs/'): Promise<{ ref: string; sha: string; type: string }[]> {
    const out = await this.#text([
      'for-each-ref',
      '--sort=refname',
      '--format=%(refname) %(objectname) %(objecttype)',
      prefix,
    ])
    if (!out) return []
    return out.split('\n').map((line) => {
      const [ref = '', sha = '', type = ''] = line.split(' ')
      return { ref, sha, type }
    })
  }

  async refSha(ref: string): Promise<string | null> {
    const { stdout, code } = await this.#git(
      ['rev-parse', '--verify', '--quiet', ref],
      undefined,
      undefined,
      [0, 1],
    )
    return code === 0 ? stdout.toString('utf8').trim() : null
  }

  /** Atomically moves `ref` to `sha`, failing if it is not at `expectedOld` (zeros = must not exist). */
  async updateRef(ref: string, sha: string, expectedOld?: string): Promise<void> {
    const args = ['update-ref', ref, sha]
    if (expectedOld !== undefined) args.push(expectedOld)
    await this.#git(args)
  }

  async deleteRef(ref: string): Promise<void> {
    await this.#git(['update-ref', '-d', ref])
  }

  async readCommit(sha: string): Promise<CommitInfo> {
    const raw = await this.#git(['cat-file', 'commit', sha])
    const text = raw.stdout.toString('utf8')
    const split = text.indexOf('\n\n')
    const header = split === -1 ? text : text.slice(0, split)
    const message = split === -1 ? '' : text.slice(split + 2)
    let tree = ''
    const parents: string[] = []
    let author: Identity = { name: '', email: '', date: '' }
    let committer: Identity = { name: '', email: '', date: '' }
    for (const line of header.split('\n')) {
      const sp = line.indexOf(' ')
      const key = line.slice(0, sp)
      const value = line.slice(sp + 1)
      if (key === 'tree') tree = value
      else if (key === 'parent') parents.push(value)
      else if (key === 'author') author = parseIdentity(value)
      else if (key === 'committer') committer = parseIdentity(value)
    }
    return { sha, tree, parents, author, committer, message }
  }

  /** Lists a tree; `recursive` descends and includes the subtrees themselves (like `ls-tree -r -t`). */
  async readTree(sha: string, recursive = false): Promise<TreeEntry[]> {
    const args = ['ls-tree', '-l', '-z']
    if (recursive) args.push('-r', '-t')
    args.push(sha)
    const out = (await this.#git(args)).stdout.toString('utf8')
    return out
      .split('\0')
      .filter(Boolean)
      .map((line) => {
        const tab = line.indexOf('\t')
        const [mode = '', type = 'blob', objSha = '', size = '-'] = line.slice(0, tab).split(/\s+/)
        const entry: TreeEntry = {
          mode,
          type: type as TreeEntry['type'],
          sha: objSha,
          path: line.slice(tab + 1),
        }
        if (size !== '-') entry.size = Number(size)
        return entry
      })
  }

  async readBlob(sha: string): Promise<Buffer> {
    return (await this.#git(['cat-file', 'blob', sha])).stdout
  }

  async writeBlob(content: Buffer | string): Promise<string> {
    return this.#text(['hash-object', '-w', '--stdin'], content)
  }

  async mktree(entries: Omit<TreeEntry, 'size'>[]): Promise<string> {
    const input = entries.map((e) => `${e.mode} ${e.type} ${e.sha}\t${e.path}`).join('\0')
    return this.#text(['mktree', '-z', '--missing'], entries.length ? `${input}\0` : '')
  }

  /** Applies path changes to `baseTree` (null = empty tree), building nested trees with mktree. */
  async applyChanges(baseTree: string | null, changes: TreeChange[]): Promise<string> {
    const top = baseTree ? await this.readTree(baseTree) : []
    const byName = new Map(top.map((e) => [e.path, e]))
    const nested = new Map<string, TreeChange[]>()
    for (const change of changes) {
      const slash = change.path.indexOf('/')
      if (slash === -1) {
        if (change.sha === null) byName.delete(change.path)
        else
          byName.set(change.path, {
            mode: change.mode ?? '100644',
            type: change.type ?? 'blob',
            sha: change.sha,
            path: change.path,
          })
      } else {
        const dir = change.path.slice(0, slash)
        const list = nested.get(dir) ?? []
        list.push({ ...change, path: change.path.slice(slash + 1) })
        nested.set(dir, list)
      }
    }
    for (const [dir, list] of nested) {
      const existing = byName.get(dir)
      const sub = await this.applyChanges(existing?.type === 'tree' ? existing.sha : null, list)
      const subEntries = await this.readTree(sub)
      if (subEntries.length === 0) byName.delete(dir)
      else byName.set(dir, { mode: '040000', type: 'tree', sha: sub, path: dir })
    }
    return this.mktree([...byName.values()])
  }

  async commitTree(
    tree: string,
    parents: string[],
    message: string,
    author?: Identity,
    committer?: Identity,
  ) {
    const args = ['commit-tree', tree]
    for (const p of parents) args.push('-p', p)
    const env: Record<string, string> = {}
    if (author) {
      env.GIT_AUTHOR_NAME = author.name
      env.GIT_AUTHOR_EMAIL = author.email
      if (author.date) env.GIT_AUTHOR_DATE = author.date
    }
    if (committer) {
      env.GIT_COMMITTER_NAME = committer.name
      env.GIT_COMMITTER_EMAIL = committer.email
      if (committer.date) env.GIT_COMMITTER_DATE = committer.date
    }
    return this.#text(args, message, env)
  }

  /** Number of commits reachable from `head` but not from `base`. */
  async countAhead(base: string, head: string): Promise<number> {
    return Number(await this.#text(['rev-list', '--count', `${base}..${head}`]))
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const { code } = await this.#git(
      ['merge-base', '--is-ancestor', ancestor, descendant],
      undefined,
      undefined,
      [0, 1],
    )
    return code === 0
  }

  /** Files changed between two commits with line counts (for PR stats). */
  async diffStat(
    base: string,
    head: string,
  ): Promise<{ additions: number; deletions: number; files: number }> {
    const out = await this.#text(['diff', '--numstat', `${base}...${head}`])
    let additions = 0
    let deletions = 0
    let files = 0
    for (const line of out.split('\n').filter(Boolean)) {
      const [a = '0', d = '0'] = line.split('\t')
      additions += Number(a) || 0
      deletions += Number(d) || 0
      files++
    }
    return { additions, deletions, files }
  }

  /** Approximate repository size in KB, like GitHub's `size`. */
  async sizeKb(): Promise<number> {
    const out = await this.#text(['count-objects', '-v'])
    const m = /size-pack: (\d+)/.exec(out)
    const loose = /size: (\d+)/.exec(out)
    return Number(m?.[1] ?? 0) + Number(loose?.[1] ?? 0)
  }
}

function parseIdentity(value: string): Identity {
  const m = /^(.*) <([^>]*)> (\d+) ([+-]\d{4})$/.exec(value)
  if (!m) return { name: value, email: '', date: '' }
  return {
    name: m[1] ?? '',
    email: m[2] ?? '',
    date: new Date(Number(m[3]) * 1000).toISOString().replace('.000Z', 'Z'),
  }
}
