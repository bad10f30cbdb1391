import { Webhooks } from '@octokit/webhooks'
import t from 'tap'
import { receiver } from './fixtures/receiver.js'
import { octokit, sim, statusOf, TOKENS } from './fixtures/sim.js'

const repo = { owner: 'acme', repo: 'infra-specs' }
const b64 = (s: string) => Buffer.from(s).toString('base64')
/** Verifies X-Hub-Signature-256 the way a receiver does, with @octokit/webhooks. */
const verify = (secret: string, body: string, signature: string) =>
  new Webhooks({ secret }).verify(body, signature)

// The machine is shared with other test runs: a generous budget, never a timing assertion.
t.setTimeout(600_000)

t.test('repository hooks: CRUD with GitHub’s refusals, a signed ping on creation', async (t) => {
  const s = await sim(t)
  const rx = await receiver(t)
  const gh = octokit(s, TOKENS.octocat)
  const created = await gh.rest.repos.createWebhook({
    ...repo,
    config: { url: rx.url, content_type: 'json', secret: 's3cret' },
    events: ['push', 'pull_request'],
  })
  t.equal(created.status, 201)
  t.equal(created.data.config.secret, '********', 'the secret is never shown')
  t.same(created.data.events, ['push', 'pull_request'])
  const id = created.data.id

  t.equal((await gh.rest.repos.listWebhooks(repo)).data.length, 1)
  const patched = await gh.rest.repos.updateWebhook({
    ...repo,
    hook_id: id,
    add_events: ['status'],
    remove_events: ['push'],
  })
  t.same(patched.data.events, ['pull_request', 'status'])
  t.equal((await gh.rest.repos.getWebhook({ ...repo, hook_id: id })).data.events.length, 2)

  const dup = await statusOf(gh.rest.repos.createWebhook({ ...repo, config: { url: rx.url } }))
  t.equal(dup.status, 422)
  t.match(dup.message, /Hook already exists on this repository/)
  const noUrl = await statusOf(gh.rest.repos.createWebhook({ ...repo, config: {} as { url: string } }))
  t.equal(noUrl.status, 422)
  t.equal(
    (await statusOf(octokit(s, TOKENS.hubot).rest.repos.listWebhooks(repo))).status,
    404,
    'a read-only collaborator does not see hooks',
  )

  await s.webhooksSettled()
  const [ping] = rx.of('ping')
  t.ok(ping, 'a ping on creation')
  t.equal(ping?.headers['x-github-hook-id'], String(id))
  t.ok(await verify('s3cret', ping!.body, String(ping!.headers['x-hub-signature-256'])), 'signature verifies')
  t.equal((await gh.rest.repos.deleteWebhook({ ...repo, hook_id: id })).status, 204)
  t.equal((await statusOf(gh.rest.repos.getWebhook({ ...repo, hook_id: id }))).status, 404)
})

t.test('delivery log and redelivery keep the X-GitHub-Delivery id', async (t) => {
  const s = await sim(t)
  const rx = await receiver(t)
  const gh = octokit(s, TOKENS.octocat)
  const hook = await gh.rest.repos.createWebhook({
    ...repo,
    config: { url: rx.url, content_type: 'json' },
    events: ['push'],
  })
  await gh.rest.repos.createOrUpdateFileContents({ ...repo, path: 'z.txt', message: 'z', content: b64('z') })
  await s.webhooksSettled()
  const list = await gh.rest.repos.listWebhookDeliveries({ ...repo, hook_id: hook.data.id })
  t.same(
    list.data.map((d) => [d.event, d.status_code, d.redelivery]),
    [
      ['push', 200, false],
      ['ping', 200, false],
    ],
  )
  const push = list.data[0]!
  const one = await gh.rest.repos.getWebhookDelivery({ ...repo, hook_id: hook.data.id, delivery_id: push.id })
  t.equal((one.data.request.payload as { ref: string }).ref, 'refs/heads/main')
  const again = await gh.rest.repos.redeliverWebhookDelivery({
    ...repo,
    hook_id: hook.data.id,
    delivery_id: push.id,
  })
  t.equal(again.status, 202)
  await s.webhooksSettled()
  const pushes = rx.of('push')
  t.equal(pushes.length, 2)
  t.equal(
    pushes[1]?.headers['x-github-delivery'],
    pushes[0]?.headers['x-github-delivery'],
    'same delivery id',
  )
  t.equal(pushes[1]?.body, pushes[0]?.body, 'same payload')
  t.equal(s.webhookDeliveries({ guid: push.guid }).filter((d) => d.redelivery).length, 1)
  t.equal(
    (
      await statusOf(
        gh.rest.repos.redeliverWebhookDelivery({ ...repo, hook_id: hook.data.id, delivery_id: 1 }),
      )
    ).status,
    404,
  )
})

t.test(
  'a failing receiver is logged with its status; form-encoded hooks are signed over the form body',
  async (t) => {
    const s = await sim(t)
    const rx = await receiver(t, 500)
    const gh = octokit(s, TOKENS.octocat)
    await gh.rest.repos.createWebhook({ ...repo, config: { url: rx.url, secret: 'f' }, events: ['push'] })
    await s.webhooksSettled()
    const [d] = s.webhookDeliveries({ event: 'ping' })
    t.equal(d?.statusCode, 500)
    t.equal(d?.status, 'Invalid HTTP Response: 500')
    const ping = rx.of('ping')[0]!
    t.equal(ping.headers['content-type'], 'application/x-www-form-urlencoded')
    t.ok(await verify('f', ping.body, String(ping.headers['x-hub-signature-256'])))
  },
)
