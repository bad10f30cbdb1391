import { createAppAuth } from '@octokit/auth-app'
import t from 'tap'
import { loadTrimmed, validate } from './fixtures/openapi.js'
import { receiver, seedWithAppHook } from './fixtures/receiver.js'
import { sim, TOKENS } from './fixtures/sim.js'

// The machine is shared with other test runs: a generous budget, never a timing assertion.
t.setTimeout(600_000)

const doc = loadTrimmed()

t.test('every implemented route answers JSON that matches GitHub’s OpenAPI description', async (t) => {
  const rx = await receiver(t)
  // The dev App with checks: write, so it can post check runs; its webhook points at a receiver.
  const s = await sim(t, { seed: seedWithAppHook(rx.url, { checks: 'write' }) })
  const checked = new Set<string>()
  const call = async (
    route: string,
    url: string,
    init: { method?: string; body?: unknown; token?: string } = {},
  ) => {
    const res = await fetch(`${s.apiUrl}${url}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `token ${init.token ?? TOKENS.octocat}`,
        accept: 'application/vnd.github+json',
        ...(init.body ? { 'content-type': 'application/json' } : {}),
      },
      body: init.body ? JSON.stringify(init.body) : undefined,
    })
    const status = String(res.status)
    const body = (await res.json()) as unknown
    const schema = doc.routes[route]?.[status]
    t.ok(schema, `${route} ${status} is described (${JSON.stringify(body).slice(0, 200)})`)
    if (schema) {
      t.same(validate(body, schema, doc), [], `${route} -> ${status} conforms`)
      checked.add(`${route} ${status}`)
    }
    return body as Record<string, unknown> & { sha?: string }
  }
  const R = '/repos/acme/infra-specs'
  await call('GET /user', '/user')
  await call('GET /users/{username}', '/users/hubot')
  await call('GET /rate_limit', '/rate_limit')
  await call('GET /user/memberships/orgs/{org}', '/user/memberships/orgs/acme')
  await call('GET /orgs/{org}/memberships/{username}', '/orgs/acme/memberships/monalisa')
  await call('GET /user/orgs', '/user/orgs')
  await call('GET /orgs/{org}', '/orgs/acme')
  await call('GET /user/repos', '/user/repos')
  await call('GET /orgs/{org}/repos', '/orgs/acme/repos')
  await call('GET /repos/{owner}/{repo}', R)
  await call('GET /repos/{owner}/{repo}', '/repos/octocat/hello-world')
  await call('GET /repos/{owner}/{repo}/branches', `${R}/branches`)
  await call('GET /repos/{owner}/{repo}/branches/{branch}', `${R}/branches/main`)
  await call('GET /repos/{owner}/{repo}/actions/workflows', `${R}/actions/workflows`)
  await call('GET /repos/{owner}/{repo}/contents/{path}', `${R}/contents/infra/alpha/dev/spec.yml`)
  await call('GET /repos/{owner}/{repo}/contents/{path}', `${R}/contents/infra`)
  const ref = await call('GET /repos/{owner}/{repo}/git/ref/{ref}', `${R}/git/ref/heads/main`)
  const main = (ref.object as { sha: string }).sha
  await call('GET /repos/{owner}/{repo}/git/matching-refs/{ref}', `${R}/git/matching-refs/heads/`)
  const commit = await call('GET /repos/{owner}/{repo}/git/commits/{commit_sha}', `${R}/git/commits/${main}`)
  const treeSha = (commit.tree as { sha: string }).sha
  const tree = await call(
    'GET /repos/{owner}/{repo}/git/trees/{tree_sha}',
    `${R}/git/trees/${treeSha}?recursive=1`,
  )
  const blobSha = (tree.tree as { type: string; sha: string }[]).find((e) => e.type === 'blob')!.sha
  await call('GET /repos/{owner}/{repo}/git/blobs/{file_sha}', `${R}/git/blobs/${blobSha}`)
  const blob = await call('POST /repos/{owner}/{repo}/git/blobs', `${R}/git/blobs`, {
    method: 'POST',
    body: { content: 'x' },
  })
  const newTree = await call('POST /repos/{owner}/{repo}/git/trees', `${R}/git/trees`, {
    method: 'POST',
    body: { base_tree: treeSha, tree: [{ path: 'x.txt', mode: '100644', type: 'blob', sha: blob.sha }] },
  })
  const newCommit = await call('POST /repos/{owner}/{repo}/git/commits', `${R}/git/commits`, {
    method: 'POST',
    body: { message: 'x', tree: newTree.sha, parents: [main] },
  })
  await call('POST /repos/{owner}/{repo}/git/refs', `${R}/git/refs`, {
    method: 'POST',
    body: { ref: 'refs/heads/conformance', sha: main },
  })
  await call('PATCH /repos/{owner}/{repo}/git/refs/{ref}', `${R}/git/refs/heads/conformance`, {
    method: 'PATCH',
    body: { sha: newCommit.sha },
  })
  const content = Buffer.from('y\n').toString('base64')
  const created = await call('PUT /repos/{owner}/{repo}/contents/{path}', `${R}/contents/y.txt`, {
    method: 'PUT',
    body: { message: 'y', content, branch: 'conformance' },
  })
  await call('PUT /repos/{owner}/{repo}/contents/{path}', `${R}/contents/y.txt`, {
    method: 'PUT',
    body: {
      message: 'y2',
      content: Buffer.from('y2\n').toString('base64'),
      branch: 'conformance',
      sha: (created.content as { sha: string }).sha,
    },
  })
  await call('POST /repos/{owner}/{repo}/pulls', `${R}/pulls`, {
    method: 'POST',
    body: { title: 'Conformance', head: 'conformance', base: 'main', body: null },
  })
  await call('GET /repos/{owner}/{repo}/pulls', `${R}/pulls`)
  await call('GET /repos/{owner}/{repo}/pulls/{pull_number}', `${R}/pulls/1`)
  await call('PATCH /repos/{owner}/{repo}/pulls/{pull_number}', `${R}/pulls/1`, {
    method: 'PATCH',
    body: { title: 'Conformance (edited)' },
  })
  await call('PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge', `${R}/pulls/1/merge`, {
    method: 'PUT',
    body: { merge_method: 'merge' },
  })

  // GitHub Apps: the App's JWT (from @octokit/auth-app), an installation token, an App user token.
  const app = s.githubApp('portico-dev')
  const { token: jwt } = await createAppAuth({ appId: app.id, privateKey: app.privateKey })({ type: 'app' })
  await call('GET /app', '/app', { token: jwt })
  await call('GET /app/installations/{installation_id}', '/app/installations/5550001', { token: jwt })
  await call('GET /repos/{owner}/{repo}/installation', `${R}/installation`, { token: jwt })
  const minted = await call(
    'POST /app/installations/{installation_id}/access_tokens',
    '/app/installations/5550001/access_tokens',
    {
      method: 'POST',
      token: jwt,
      body: { repositories: ['infra-specs'], permissions: { contents: 'read' } },
    },
  )
  await call('GET /installation/repositories', '/installation/repositories', { token: String(minted.token) })
  const auth = await fetch(`${s.url}/login/oauth/authorize?client_id=${app.clientId}`, { redirect: 'manual' })
  const code = new URL(auth.headers.get('location')!).searchParams.get('code')!
  const userToken = (await (
    await fetch(`${s.url}/login/oauth/access_token`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: app.clientId, client_secret: app.clientSecret, code }),
    })
  ).json()) as { access_token: string }
  await call('GET /user/installations', '/user/installations', { token: userToken.access_token })
  await call(
    'GET /user/installations/{installation_id}/repositories',
    '/user/installations/5550001/repositories',
    { token: userToken.access_token },
  )

  // Webhooks, statuses, check runs.
  const hook = await call('POST /repos/{owner}/{repo}/hooks', `${R}/hooks`, {
    method: 'POST',
    body: { config: { url: `${s.url}/nowhere`, content_type: 'json', secret: 'x' }, events: ['push'] },
  })
  await call('GET /repos/{owner}/{repo}/hooks', `${R}/hooks`)
  await call('GET /repos/{owner}/{repo}/hooks/{hook_id}', `${R}/hooks/${hook.id}`)
  await call('PATCH /repos/{owner}/{repo}/hooks/{hook_id}', `${R}/hooks/${hook.id}`, {
    method: 'PATCH',
    body: { add_events: ['status'] },
  })
  await s.webhooksSettled()
  const deliveries = (await call(
    'GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries',
    `${R}/hooks/${hook.id}/deliveries`,
  )) as unknown as { id: number }[]
  await call(
    'GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}',
    `${R}/hooks/${hook.id}/deliveries/${deliveries[0]!.id}`,
  )
  await call('GET /app/hook/deliveries', '/app/hook/deliveries', { token: jwt })
  await call('POST /repos/{owner}/{repo}/statuses/{sha}', `${R}/statuses/${main}`, {
    method: 'POST',
    body: { state: 'success', context: 'ci', target_url: 'https://ci.example/1', description: 'ok' },
  })
  await call('GET /repos/{owner}/{repo}/commits/{ref}/status', `${R}/commits/${main}/status`)
  await call('GET /repos/{owner}/{repo}/commits/{ref}/statuses', `${R}/commits/main/statuses`)
  const checker = await call(
    'POST /app/installations/{installation_id}/access_tokens',
    '/app/installations/5550001/access_tokens',
    { method: 'POST', token: jwt, body: { permissions: { checks: 'write' } } },
  )
  const run = await call('POST /repos/{owner}/{repo}/check-runs', `${R}/check-runs`, {
    method: 'POST',
    token: String(checker.token),
    body: { name: 'apply', head_sha: main, status: 'in_progress' },
  })
  await call('PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}', `${R}/check-runs/${run.id}`, {
    method: 'PATCH',
    token: String(checker.token),
    body: { conclusion: 'success', output: { title: 'Applied', summary: 'ok' } },
  })
  await call('GET /repos/{owner}/{repo}/check-runs/{check_run_id}', `${R}/check-runs/${run.id}`)
  await call('GET /repos/{owner}/{repo}/commits/{ref}/check-runs', `${R}/commits/${main}/check-runs`)

  const described = Object.entries(doc.routes).flatMap(([route, byStatus]) =>
    Object.keys(byStatus).map((st) => `${route} ${st}`),
  )
  t.same([...checked].sort(), described.sort(), 'every route/status in the trimmed description was exercised')
  t.equal(doc.source.package, '@octokit/openapi')
})

t.test('the validator catches drift', async (t) => {
  const schema = doc.routes['GET /repos/{owner}/{repo}/git/ref/{ref}']!['200']!
  t.same(
    validate(
      { ref: 'refs/heads/x', node_id: 'n', url: 'u', object: { type: 'commit', sha: 'a', url: 'u' } },
      schema,
      doc,
    ),
    [],
  )
  t.match(
    validate({ ref: 'refs/heads/x', url: 'u', object: { type: 'commit', sha: 1, url: 'u' } }, schema, doc),
    [/missing required "node_id"/, /\$\.object\.sha: expected string, got integer/],
  )
  t.match(
    validate(
      { ref: null, node_id: 'n', url: 'u', object: { type: 'commit', sha: 'a', url: 'u' } },
      schema,
      doc,
    ),
    [/null is not allowed/],
  )
})
