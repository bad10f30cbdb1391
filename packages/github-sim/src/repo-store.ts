import type { GitRepo } from './git-repo.js'
import { SEED_TIME, type World } from './state.js'
import type { SeedRepo } from './types.js'

const SEED_IDENTITY = { name: 'GitHub', email: 'noreply@github.com', date: SEED_TIME }

/** Creates every seeded repository as a bare git repo with one commit holding its files. */
export async function materializeRepos(world: World, repos: SeedRepo[]): Promise<void> {
  await Promise.all(repos.map((r) => materializeRepo(world, r)))
}

async function materializeRepo(world: World, seed: SeedRepo): Promise<void> {
  const owner = world.user(seed.owner)?.login ?? world.org(seed.owner)?.login ?? seed.owner
  const defaultBranch = seed.default_branch ?? 'main'
  const rec = world.registerRepo({
    owner,
    name: seed.name,
    id: seed.id ?? world.nextId(),
    private: seed.private,
    description: seed.description ?? null,
    defaultBranch,
    createdAt: SEED_TIME,
    pushedAt: SEED_TIME,
    updatedAt: SEED_TIME,
    collaborators: new Map((seed.collaborators ?? []).map((c) => [c.login.toLowerCase(), c.permission])),
  })
  const repo = rec.git
  await repo.init(defaultBranch)
  // An empty repository has HEAD pointing at an unborn branch and no refs, as on GitHub.
  if (seed.empty) return
  const commit = await commitFiles(rec.git, null, null, seed.files, 'Initial commit')
  await repo.updateRef(`refs/heads/${defaultBranch}`, commit)
  await repo.setHead(defaultBranch)
  for (const [branch, files] of Object.entries(seed.branches ?? {})) {
    const base = await repo.readCommit(commit)
    const sha = Object.keys(files).length
      ? await commitFiles(repo, base.tree, commit, files, `Add ${branch} changes`)
      : commit
    await repo.updateRef(`refs/heads/${branch}`, sha)
  }
}

async function commitFiles(
  repo: GitRepo,
  baseTree: string | null,
  parent: string | null,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  const changes = []
  for (const [path, content] of Object.entries(files)) {
    changes.push({ path, sha: await repo.writeBlob(content) })
  }
  const tree = await repo.applyChanges(baseTree, changes)
  return repo.commitTree(tree, parent ? [parent] : [], `${message}\n`, SEED_IDENTITY, SEED_IDENTITY)
}
