import { createOctokit } from '@portico/core'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { PodCatalog } from '../src/index.js'

const { sim, tokenOf } = await startTestSimulator(t)
const location = { owner: 'acme', repo: 'infra-specs', branch: 'main', specsPath: 'infra' }
const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })

async function addPod(customer: string, env: string): Promise<void> {
  await bot.rest.repos.createOrUpdateFileContents({
    owner: location.owner,
    repo: location.repo,
    path: `infra/${customer}/${env}/spec.yml`,
    message: `test: ${customer}/${env}`,
    content: Buffer.from('customer: x\n').toString('base64'),
    branch: 'main',
  })
}

t.test('an answer that arrives after a refresh is not taken as confirmed', async (t) => {
  const catalog = new PodCatalog(location, { revalidateAfterMs: 60_000 })
  const octokit = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
  // GitHub has answered the first listing; before the catalog sees that answer, the specs change
  // and someone refreshes (the order `POST /api/refresh` exists for).
  let refreshDuringAnswer = true
  octokit.hook.after('request', async () => {
    if (!refreshDuringAnswer) return
    refreshDuringAnswer = false
    await addPod('delta', 'dev')
    await catalog.clear()
  })
  const before = await catalog.list(octokit)
  t.notOk(
    before.some((p) => p.customer === 'delta'),
    'the read that asked before the refresh gets the answer it asked for',
  )
  sim.ledger.clear()
  const after = await catalog.list(octokit)
  t.ok(
    after.some((p) => p.customer === 'delta' && p.env === 'dev'),
    'the first read after the refresh sees the new pod',
  )
  t.same(
    sim.ledger.entries({ kind: 'api' }).map((e) => e.route),
    ['GET /repos/{owner}/{repo}/git/trees/{tree_sha}'],
    'GitHub was asked again',
  )
  // Within the window, a read after a confirmed answer does not ask again (the control).
  sim.ledger.clear()
  t.same(await catalog.list(octokit), after)
  t.same(sim.ledger.entries({ kind: 'api' }), [], 'confirmed answers are served within the window')
})

t.test('confirmations are neither served nor kept while they are not trusted', async (t) => {
  let trusted = true
  const catalog = new PodCatalog(location, { revalidateAfterMs: 60_000, confirmationsTrusted: () => trusted })
  const octokit = createOctokit({ token: tokenOf('octocat'), baseUrl: sim.apiUrl, retries: 0 })
  const asked = async () => {
    sim.ledger.clear()
    await catalog.list(octokit)
    return sim.ledger.entries({ kind: 'api' }).length
  }
  t.ok((await asked()) > 0, 'the first listing asks GitHub')
  t.equal(await asked(), 0, 'confirmed while trusted: served without asking')
  trusted = false
  t.ok((await asked()) > 0, 'not trusted: the confirmed listing is revalidated')
  t.ok((await asked()) > 0, 'and the 304 it got is not kept as a confirmation')
  trusted = true
  // Forgetting what came before is the caller's part: the API forgets when its channel is back.
  catalog.forget()
  t.ok((await asked()) > 0, 'trusted again and forgotten: asked once')
  t.equal(await asked(), 0, 'then confirmed again')
})
