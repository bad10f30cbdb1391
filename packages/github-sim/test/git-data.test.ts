import t from 'tap'
import { octokit, sim, statusOf, TOKENS } from './fixtures/sim.js'

t.test('refs, trees, commits and pull requests', async (t) => {
  const s = await sim(t)
  const gh = octokit(s, TOKENS.bot)
  const repo = { owner: 'acme', repo: 'infra-specs' }
  const main = await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })
  const base = main.data.object.sha

  const created = await gh.rest.git.createRef({ ...repo, ref: 'refs/heads/feature/x', sha: base })
  t.equal(created.status, 201)
  const dup = await statusOf(gh.rest.git.createRef({ ...repo, ref: 'refs/heads/feature/x', sha: base }))
  t.equal(dup.status, 422)
  t.match(dup.message, /Reference already exists/)
  t.equal(
    (await statusOf(octokit(s, TOKENS.hubot).rest.git.createRef({ ...repo, ref: 'refs/heads/y', sha: base })))
      .status,
    404,
    'read-only',
  )

  const noCommits = await statusOf(
    gh.rest.pulls.create({ ...repo, title: 't', head: 'feature/x', base: 'main' }),
  )
  t.equal(noCommits.status, 422)
  t.match(noCommits.message, /No commits between main and feature\/x/)

  const blob = await gh.rest.git.createBlob({ ...repo, content: 'hello', encoding: 'utf-8' })
  const baseCommit = await gh.rest.git.getCommit({ ...repo, commit_sha: base })
  const tree = await gh.rest.git.createTree({
    ...repo,
    base_tree: baseCommit.data.tree.sha,
    tree: [
      { path: 'infra/beta/dev/spec.yml', mode: '100644', type: 'blob', sha: blob.data.sha },
      { path: 'notes/new.md', mode: '100644', type: 'blob', content: '# new\n' },
    ],
  })
  t.equal(tree.status, 201)
  const commit = await gh.rest.git.createCommit({
    ...repo,
    message: 'Change beta dev',
    tree: tree.data.sha,
    parents: [base],
  })
  t.equal(commit.data.parents[0]?.sha, base)
  const updated = await gh.rest.git.updateRef({ ...repo, ref: 'heads/feature/x', sha: commit.data.sha })
  t.equal(updated.data.object.sha, commit.data.sha)
  const nonFf = await statusOf(gh.rest.git.updateRef({ ...repo, ref: 'heads/feature/x', sha: base }))
  t.equal(nonFf.status, 422, 'not a fast forward')
  t.equal(
    (await gh.rest.git.updateRef({ ...repo, ref: 'heads/feature/x', sha: base, force: true })).status,
    200,
  )
  await gh.rest.git.updateRef({ ...repo, ref: 'heads/feature/x', sha: commit.data.sha })

  const pr = await gh.rest.pulls.create({
    ...repo,
    title: 'Beta dev',
    head: 'feature/x',
    base: 'main',
    body: 'why',
  })
  t.equal(pr.status, 201)
  t.equal(pr.data.number, 1)
  t.equal(pr.data.head.sha, commit.data.sha)
  t.equal(pr.data.commits, 1)
  t.equal(pr.data.changed_files, 2)
  const again = await statusOf(
    gh.rest.pulls.create({ ...repo, title: 'dup', head: 'acme:feature/x', base: 'main' }),
  )
  t.equal(again.status, 422)
  t.match(again.message, /A pull request already exists for acme:feature\/x\./)
  const list = await gh.rest.pulls.list({ ...repo, head: 'acme:feature/x', state: 'open' })
  t.equal(list.data.length, 1)
  t.equal((await gh.rest.pulls.list({ ...repo, head: 'acme:other' })).data.length, 0)
  t.equal((await gh.rest.pulls.get({ ...repo, pull_number: 1 })).data.title, 'Beta dev')
  t.equal((await statusOf(gh.rest.pulls.get({ ...repo, pull_number: 9 }))).status, 404)

  const matching = await gh.rest.git.listMatchingRefs({ ...repo, ref: 'heads/feature' })
  t.same(
    matching.data.map((r) => r.ref),
    ['refs/heads/feature/x'],
  )
  const full = await gh.rest.git.getTree({ ...repo, tree_sha: 'feature/x', recursive: '1' })
  t.equal(full.data.truncated, false)
  t.ok(full.data.tree.some((e) => e.path === 'notes/new.md'))
  s.truncateTrees(true)
  const cut = await gh.rest.git.getTree({ ...repo, tree_sha: commit.data.tree.sha, recursive: '1' })
  t.equal(cut.data.truncated, true)
  t.ok(cut.data.tree.length < full.data.tree.length)
  s.truncateTrees(false)

  const gotBlob = await gh.rest.git.getBlob({ ...repo, file_sha: blob.data.sha })
  t.equal(Buffer.from(gotBlob.data.content, 'base64').toString('utf8'), 'hello')
  const file = await gh.rest.repos.getContent({ ...repo, path: 'notes/new.md', ref: 'feature/x' })
  t.equal((file.data as { sha: string }).sha, full.data.tree.find((e) => e.path === 'notes/new.md')?.sha)

  t.equal((await gh.rest.git.deleteRef({ ...repo, ref: 'heads/feature/x' })).status, 204)
  t.equal((await statusOf(gh.rest.git.getRef({ ...repo, ref: 'heads/feature/x' }))).status, 404)
  t.equal((await statusOf(gh.rest.git.deleteRef({ ...repo, ref: 'heads/feature/x' }))).status, 422)

  const branches = await gh.rest.repos.listBranches({ ...repo, per_page: 1 })
  t.equal(branches.data.length, 1)
  const branch = await gh.rest.repos.getBranch({ ...repo, branch: 'main' })
  t.equal(branch.data.commit.sha, base)
  const flows = await gh.rest.actions.listRepoWorkflows(repo)
  t.equal(flows.data.total_count, 1)
  t.equal(flows.data.workflows[0]?.path, '.github/workflows/apply.yml')
})
