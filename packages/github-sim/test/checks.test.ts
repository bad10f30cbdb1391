import { createAppAuth } from '@octokit/auth-app'
import { Octokit } from '@octokit/rest'
import { Webhooks } from '@octokit/webhooks'
import t from 'tap'
import type { Simulator } from '../src/index.js'
import { receiver, seedWithAppHook } from './fixtures/receiver.js'
import { octokit, sim, statusOf, TOKENS } from './fixtures/sim.js'

// The machine is shared with other test runs: a generous budget, never a timing assertion.
t.setTimeout(600_000)

const repo = { owner: 'acme', repo: 'infra-specs' }
const INSTALLATION = 5550001
const b64 = (s: string) => Buffer.from(s).toString('base64')

/** Mints an installation token for the dev App through the REST API, as @octokit/auth-app would. */
async function installationToken(s: Simulator, permissions?: Record<string, string>): Promise<string> {
  const app = s.githubApp('portico-dev')
  const gh = new Octokit({
    baseUrl: s.apiUrl,
    authStrategy: createAppAuth,
    auth: { appId: app.id, privateKey: app.privateKey },
  })
  const { data } = await gh.request('POST /app/installations/{installation_id}/access_tokens', {
    installation_id: INSTALLATION,
    ...(permissions ? { permissions } : {}),
  })
  return data.token
}

/** Opens and merges a one-file pull request; returns the merge commit sha. */
async function mergeOne(s: Simulator, branch: string): Promise<string> {
  const gh = octokit(s, TOKENS.octocat)
  const main = (await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })).data.object.sha
  await gh.rest.git.createRef({ ...repo, ref: `refs/heads/${branch}`, sha: main })
  await gh.rest.repos.createOrUpdateFileContents({
    ...repo,
    path: `${branch}.txt`,
    message: branch,
    content: b64(branch),
    branch,
  })
  const pr = await gh.rest.pulls.create({ ...repo, title: branch, head: branch, base: 'main' })
  return (await gh.rest.pulls.merge({ ...repo, pull_number: pr.data.number })).data.sha
}

t.test('commit statuses: create, combined status, refusals, status events', async (t) => {
  const rx = await receiver(t)
  const s = await sim(t, { seed: seedWithAppHook(rx.url) })
  const gh = octokit(s, TOKENS.octocat)
  const main = (await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })).data.object.sha
  const pending = await gh.rest.repos.createCommitStatus({
    ...repo,
    sha: main,
    state: 'pending',
    context: 'ci/apply',
  })
  t.equal(pending.status, 201)
  t.equal(pending.data.context, 'ci/apply')
  t.equal((await gh.rest.repos.getCombinedStatusForRef({ ...repo, ref: 'main' })).data.state, 'pending')
  await gh.rest.repos.createCommitStatus({
    ...repo,
    sha: main,
    state: 'success',
    context: 'ci/apply',
    target_url: 'https://ci.example/1',
  })
  await gh.rest.repos.createCommitStatus({ ...repo, sha: main, state: 'success' })
  const combined = await gh.rest.repos.getCombinedStatusForRef({ ...repo, ref: main })
  t.equal(combined.data.state, 'success')
  t.equal(combined.data.total_count, 2, 'the latest status per context')
  await gh.rest.repos.createCommitStatus({ ...repo, sha: main, state: 'failure', context: 'lint' })
  t.equal((await gh.rest.repos.getCombinedStatusForRef({ ...repo, ref: 'main' })).data.state, 'failure')

  t.equal(
    (await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: main, state: 'bogus' as 'success' })))
      .status,
    422,
  )
  const noCommit = await statusOf(
    gh.rest.repos.createCommitStatus({ ...repo, sha: 'f'.repeat(40), state: 'success' }),
  )
  t.equal(noCommit.status, 422)
  t.match(noCommit.message, /No commit found for SHA/)
  t.equal(
    (
      await statusOf(
        octokit(s, TOKENS.hubot).rest.repos.createCommitStatus({ ...repo, sha: main, state: 'success' }),
      )
    ).status,
    404,
    'read access cannot post statuses',
  )
  const readOnlyApp = await installationToken(s)
  const denied = await statusOf(
    octokit(s, readOnlyApp).rest.repos.createCommitStatus({ ...repo, sha: main, state: 'success' }),
  )
  t.equal(denied.status, 403, 'an App with statuses: read')
  t.match(denied.message, /Resource not accessible by integration/)

  await s.webhooksSettled()
  const statuses = rx.of('status').map((r) => r.payload as { state: string; context: string; sha: string })
  // Deliveries are separate HTTP requests: GitHub does not promise their order, nor does the simulator.
  t.same(statuses.map((p) => `${p.state} ${p.context}`).sort(), [
    'failure lint',
    'pending ci/apply',
    'success ci/apply',
    'success default',
  ])
  t.ok(statuses.every((p) => p.sha === main))
})

t.test('check runs: GitHub Apps only, created and completed, listed per ref, check_run events', async (t) => {
  const rx = await receiver(t)
  const s = await sim(t, { seed: seedWithAppHook(rx.url, { checks: 'write' }) })
  const gh = octokit(s, TOKENS.octocat)
  const main = (await gh.rest.git.getRef({ ...repo, ref: 'heads/main' })).data.object.sha
  const pat = await statusOf(gh.rest.checks.create({ ...repo, name: 'x', head_sha: main }))
  t.equal(pat.status, 403, 'a PAT cannot create check runs')
  const readOnly = await installationToken(s, { checks: 'read' })
  t.equal(
    (await statusOf(octokit(s, readOnly).rest.checks.create({ ...repo, name: 'x', head_sha: main }))).status,
    403,
  )

  const app = octokit(s, await installationToken(s))
  t.equal(
    (await statusOf(app.rest.checks.create({ ...repo, name: 'x', head_sha: 'a'.repeat(40) }))).status,
    422,
  )
  t.equal(
    (await statusOf(app.rest.checks.create({ ...repo, name: 'x', head_sha: main, status: 'completed' })))
      .status,
    422,
    'completed needs a conclusion',
  )
  const created = await app.rest.checks.create({
    ...repo,
    name: 'apply',
    head_sha: main,
    status: 'in_progress',
  })
  t.equal(created.status, 201)
  t.equal(created.data.app?.slug, 'portico-dev')
  const done = await app.rest.checks.update({
    ...repo,
    check_run_id: created.data.id,
    conclusion: 'failure',
    details_url: 'https://ci.example/runs/9',
    output: { title: 'Apply failed', summary: 'boom' },
  })
  t.equal(done.data.status, 'completed')
  t.equal(done.data.conclusion, 'failure')
  t.ok(done.data.completed_at)
  const listed = await gh.rest.checks.listForRef({ ...repo, ref: 'main' })
  t.same(
    listed.data.check_runs.map((r) => [r.name, r.conclusion, r.details_url]),
    [['apply', 'failure', 'https://ci.example/runs/9']],
  )
  t.equal((await gh.rest.checks.get({ ...repo, check_run_id: created.data.id })).data.id, created.data.id)

  await s.webhooksSettled()
  const runs = rx
    .of('check_run')
    .map((r) => r.payload as { action: string; check_run: { conclusion: string | null } })
  t.same(
    runs.map((r) => [r.action, r.check_run.conclusion]),
    [
      ['created', null],
      ['completed', 'failure'],
    ],
  )
  // The receiver checks signatures with @octokit/webhooks, as Portico will.
  const webhooks = new Webhooks({ secret: 'app-secret' })
  for (const r of rx.of('check_run'))
    t.ok(await webhooks.verify(r.body, String(r.headers['x-hub-signature-256'])))
})

t.test('apply on merge: the specs repository’s CI posts a check run on the merge commit', async (t) => {
  const rx = await receiver(t)
  const s = await sim(t, { seed: seedWithAppHook(rx.url) })
  const gh = octokit(s, TOKENS.octocat)
  const sha = await mergeOne(s, 'deploy-ok')
  await s.webhooksSettled()
  const runs = await gh.rest.checks.listForRef({ ...repo, ref: sha })
  t.same(
    runs.data.check_runs.map((r) => [r.name, r.status, r.conclusion]),
    [['apply', 'completed', 'success']],
  )
  t.match(runs.data.check_runs[0]?.details_url, /\/acme\/infra-specs\/actions\/runs\/\d+$/)

  s.setApplyOnMerge('acme', 'infra-specs', { conclusion: 'failure', name: 'apply' })
  const failed = await mergeOne(s, 'deploy-bad')
  await s.webhooksSettled()
  const bad = await gh.rest.checks.listForRef({ ...repo, ref: failed })
  t.equal(bad.data.check_runs[0]?.conclusion, 'failure')

  const completed = rx
    .of('check_run')
    .map((r) => r.payload as { action: string; check_run: { head_sha: string; conclusion: string } })
    .filter((p) => p.action === 'completed')
  t.same(
    completed.map((p) => [p.check_run.head_sha, p.check_run.conclusion]),
    [
      [sha, 'success'],
      [failed, 'failure'],
    ],
  )
  const closed = rx
    .of('pull_request')
    .map((r) => r.payload as { action: string; pull_request: { merged: boolean } })
  t.same(
    closed.filter((p) => p.action === 'closed').map((p) => p.pull_request.merged),
    [true, true],
  )
})
