import { Webhooks } from '@octokit/webhooks'
import t from 'tap'
import { receiver, seedWithAppHook } from './fixtures/receiver.js'
import { octokit, sim, statusOf, TOKENS } from './fixtures/sim.js'

const repo = { owner: 'acme', repo: 'infra-specs' }
const b64 = (s: string) => Buffer.from(s).toString('base64')
/** Verifies X-Hub-Signature-256 the way a receiver does, with @octokit/webhooks. */
const verify = (secret: string, body: string, signature: string) =>
  new Webhooks({ secret }).verify(body, signature)

// The machine is shared with other test runs: a generous budget, never a timing assertion.
t.setTimeout(600_000)

t.test('push and pull_request events: contents API, PR opened, merged, closed', async (t) => {
  const s = await sim(t)
  const rx = await receiver(t)
  const gh = octokit(s, TOKENS.octocat)
  await gh.rest.repos.createWebhook({
    ...repo,
    config: { url: rx.url, content_type: 'json', secret: 'k' },
    events: ['push', 'pull_request'],
  })
  const main = (await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })).data.object.sha
  await gh.rest.git.createRef({ ...repo, ref: 'refs/heads/deploy/alpha-dev', sha: main })
  const put = await gh.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: 'infra/alpha/dev/new.yml',
    message: 'Add new.yml',
    content: b64('x: 1\n'),
    branch: 'deploy/alpha-dev',
  })
  const pr = await gh.rest.pulls.create({
    ...repo,
    title: 'Deploy alpha dev',
    head: 'deploy/alpha-dev',
    base: 'main',
  })
  const merged = await gh.rest.pulls.merge({ ...repo, pull_number: pr.data.number, sha: put.data.commit.sha })
  t.equal(merged.data.merged, true)
  t.equal(merged.data.message, 'Pull Request successfully merged')
  await s.webhooksSettled()

  const pushes = rx.of('push').map((r) => r.payload)
  t.same(
    pushes.map((p) => [p.ref, p.created]),
    [
      ['refs/heads/deploy/alpha-dev', true],
      ['refs/heads/deploy/alpha-dev', false],
      ['refs/heads/main', false],
    ],
  )
  const contentsPush = pushes[1] as {
    after: string
    commits: { added: string[] }[]
    head_commit: { id: string }
  }
  t.equal(contentsPush.after, put.data.commit.sha)
  t.same(contentsPush.commits[0]?.added, ['infra/alpha/dev/new.yml'])
  t.equal((pushes[2] as { after: string }).after, merged.data.sha, 'the merge pushes main')

  const prs = rx
    .of('pull_request')
    .map((r) => r.payload as { action: string; pull_request: Record<string, unknown> })
  t.same(
    prs.map((p) => p.action),
    ['opened', 'closed'],
  )
  t.equal(prs[1]?.pull_request.merged, true)
  t.equal(prs[1]?.pull_request.merge_commit_sha, merged.data.sha)
  for (const r of rx.received) {
    t.match(r.headers['x-github-delivery'], /^[0-9a-f-]{36}$/)
    t.ok(
      await verify('k', r.body, String(r.headers['x-hub-signature-256'])),
      `${r.headers['x-github-event']} signed`,
    )
  }
  const got = await gh.rest.pulls.get({ ...repo, pull_number: pr.data.number })
  t.equal(got.data.merged, true)
  t.equal(got.data.state, 'closed')
  t.equal(
    (await statusOf(gh.rest.pulls.merge({ ...repo, pull_number: pr.data.number }))).status,
    405,
    'merged already',
  )

  // Closing without merging.
  await gh.rest.git.createRef({ ...repo, ref: 'refs/heads/deploy/beta', sha: merged.data.sha })
  await gh.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: 'b.txt',
    message: 'b',
    content: b64('b'),
    branch: 'deploy/beta',
  })
  const pr2 = await gh.rest.pulls.create({ ...repo, title: 'beta', head: 'deploy/beta', base: 'main' })
  const stale = await statusOf(gh.rest.pulls.merge({ ...repo, pull_number: pr2.data.number, sha: main }))
  t.equal(stale.status, 409)
  t.match(stale.message, /Head branch was modified/)
  const closed = await gh.rest.pulls.update({ ...repo, pull_number: pr2.data.number, state: 'closed' })
  t.equal(closed.data.state, 'closed')
  t.equal(closed.data.merged, false)
  await s.webhooksSettled()
  const last = rx.of('pull_request').at(-1)?.payload as { action: string; pull_request: { merged: boolean } }
  t.same([last.action, last.pull_request.merged], ['closed', false])
})

t.test('a merge with conflicting changes is refused with 405', async (t) => {
  const s = await sim(t)
  const gh = octokit(s, TOKENS.octocat)
  const main = (await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })).data.object.sha
  await gh.rest.git.createRef({ ...repo, ref: 'refs/heads/x', sha: main })
  const file = await gh.rest.repos.getContent({ ...repo, path: 'README.md' })
  const sha = (file.data as { sha: string }).sha
  await gh.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: 'README.md',
    message: 'x',
    content: b64('x\n'),
    sha,
    branch: 'x',
  })
  const pr = await gh.rest.pulls.create({ ...repo, title: 'x', head: 'x', base: 'main' })
  await gh.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: 'README.md',
    message: 'y',
    content: b64('y\n'),
    sha,
  })
  const r = await statusOf(gh.rest.pulls.merge({ ...repo, pull_number: pr.data.number }))
  t.equal(r.status, 405)
  t.match(r.message, /Pull Request is not mergeable/)
})

t.test(
  'the App’s webhook gets events of the repositories it is installed on, with installation',
  async (t) => {
    const rx = await receiver(t)
    const s = await sim(t, { seed: seedWithAppHook((await Promise.resolve(rx)).url) })
    const gh = octokit(s, TOKENS.octocat)
    await gh.rest.repos.createOrUpdateFileContents({
      ...repo,
      path: 'p.txt',
      message: 'p',
      content: b64('p'),
    })
    await gh.rest.repos.createOrUpdateFileContents({
      owner: 'octocat',
      repo: 'hello-world',
      path: 'p.txt',
      message: 'p',
      content: b64('p'),
    })
    s.setInstallationRepositories(5550001, ['sample-app'])
    s.emitRepositoryEvent('acme', 'sample-app', 'renamed', { repository: { name: { from: 'old-name' } } })
    await s.webhooksSettled()
    const pushes = rx.of('push')
    t.same(
      pushes.map((p) => (p.payload.repository as { full_name: string }).full_name),
      ['acme/infra-specs'],
      'only installed repositories',
    )
    t.equal((pushes[0]!.payload.installation as { id: number }).id, 5550001)
    t.equal(pushes[0]?.headers['x-github-hook-installation-target-type'], 'integration')
    t.ok(await verify('app-secret', pushes[0]!.body, String(pushes[0]!.headers['x-hub-signature-256'])))
    const removed = rx.of('installation_repositories')[0]?.payload as {
      action: string
      repositories_removed: { full_name: string }[]
    }
    t.same(
      [removed.action, removed.repositories_removed.map((r) => r.full_name)],
      ['removed', ['acme/infra-specs']],
    )
    const renamed = rx.of('repository')[0]?.payload as { action: string; changes: unknown }
    t.same([renamed.action, renamed.changes], ['renamed', { repository: { name: { from: 'old-name' } } }])
  },
)
