import { createHmac, randomUUID } from 'node:crypto'
import { Webhooks } from '@octokit/webhooks'
import { webhookJobId } from '@portico/core'
import { findWebhookDelivery } from '@portico/db'
import t from 'tap'
import { build } from './helper.js'

/** `sha256=` HMAC of `body`, as GitHub signs deliveries (@octokit/webhooks). */
const sign = (secret: string, body: string) => new Webhooks({ secret }).sign(body)

const SECRET = 'webhook-secret-current-0123456789'
const PREVIOUS = 'webhook-secret-previous-0123456789'

async function delivery(
  app: Awaited<ReturnType<typeof build>>,
  opts: {
    event?: string
    id?: string
    payload?: unknown
    body?: string | Buffer
    secret?: string | null
    signature?: string
    contentType?: string
  } = {},
) {
  const body = opts.body ?? JSON.stringify(opts.payload ?? { action: 'closed', number: 1 })
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? 'application/json',
    'x-github-event': opts.event ?? 'pull_request',
    'x-github-delivery': opts.id ?? randomUUID(),
    'x-github-hook-id': '42',
    'user-agent': 'GitHub-Hookshot/test',
  }
  if (opts.signature !== undefined) headers['x-hub-signature-256'] = opts.signature
  else if (opts.secret !== null)
    headers['x-hub-signature-256'] = await sign(opts.secret ?? SECRET, String(body))
  return app.inject({ method: 'POST', url: '/webhooks/github', headers, body })
}

t.test('no secret configured → 503 WEBHOOKS_NOT_CONFIGURED, before anything is read', async (t) => {
  const app = await build(t, { GITHUB_WEBHOOK_SECRET: undefined })
  const res = await delivery(app)
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'WEBHOOKS_NOT_CONFIGURED')
  t.equal(res.json().error, res.json().message)
  t.match(res.json().message, /GITHUB_WEBHOOK_SECRET is not set/, 'the sentence says what to set')
})

t.test('with a secret', async (t) => {
  const app = await build(t, { GITHUB_WEBHOOK_SECRET: SECRET, GITHUB_WEBHOOK_SECRET_PREVIOUS: PREVIOUS })

  t.test('a verified delivery is stored and queued (job data: the delivery id only)', async (t) => {
    const id = randomUUID()
    const payload = { action: 'closed', number: 7, repository: { id: 700001 }, installation: { id: 5550001 } }
    const res = await delivery(app, { id, payload })
    t.equal(res.statusCode, 202, res.body)
    t.same(res.json(), { delivery_id: id, status: 'queued' })
    const row = await findWebhookDelivery(app.db, id)
    t.equal(row?.event, 'pull_request')
    t.equal(row?.action, 'closed')
    t.equal(row?.repository_id, 700001)
    t.equal(row?.installation_id, 5550001)
    t.equal(row?.hook_id, 42)
    t.equal(row?.outcome, 'queued')
    t.same(row?.payload, payload)
    const job = await app.queues.webhooks.getJob(webhookJobId(id))
    t.same(
      job?.data,
      { deliveryId: id, requestId: res.headers['x-request-id'] },
      'ids only: the delivery and the request',
    )
  })

  t.test('the same X-GitHub-Delivery again → duplicate, stored once, one job', async (t) => {
    const id = randomUUID()
    t.equal((await delivery(app, { id })).json().status, 'queued')
    const again = await delivery(app, { id })
    t.equal(again.statusCode, 202)
    t.same(again.json(), { delivery_id: id, status: 'duplicate' })
    const count = await app.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('delivery_id', '=', id)
      .executeTakeFirstOrThrow()
    t.equal(Number(count.n), 1)
    const jobs = await app.queues.webhooks.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed'])
    t.equal(jobs.filter((j) => j.data.deliveryId === id).length, 1)
  })

  t.test('signed with the previous secret (during a rotation) → accepted', async (t) => {
    const res = await delivery(app, { secret: PREVIOUS })
    t.equal(res.statusCode, 202, res.body)
  })

  t.test('bad, missing or foreign signatures → 401 INVALID_SIGNATURE, nothing stored', async (t) => {
    const cases: { name: string; signature?: string; secret?: string | null }[] = [
      { name: 'missing', secret: null },
      { name: 'another secret', secret: 'not-the-secret' },
      { name: 'malformed', signature: 'sha256=zz' },
      { name: 'sha1 only', signature: `sha1=${createHmac('sha1', SECRET).update('{}').digest('hex')}` },
      { name: 'of another body', signature: await sign(SECRET, '{"action":"opened"}') },
    ]
    for (const c of cases) {
      const id = randomUUID()
      const res = await delivery(app, { id, ...c })
      t.equal(res.statusCode, 401, c.name)
      t.equal(res.json().code, 'INVALID_SIGNATURE', c.name)
      t.equal(await findWebhookDelivery(app.db, id), undefined, `${c.name}: not stored`)
    }
  })

  t.test('the signature covers the raw bytes: a re-serialised body fails', async (t) => {
    const body = '{ "action":  "closed", "number": 1 }'
    const signature = await sign(SECRET, body)
    const ok = await delivery(app, { body, signature })
    t.equal(ok.statusCode, 202)
    const reformatted = await delivery(app, { body: JSON.stringify(JSON.parse(body)), signature })
    t.equal(reformatted.statusCode, 401)
  })

  t.test('a body that is not UTF-8 cannot be verified: 401, however it was signed', async (t) => {
    // A review's example: byte 0xFF, signed over the text it decodes to (U+FFFD), was accepted.
    const raw = Buffer.concat([
      Buffer.from('{"action":"closed","number":1,"x":"'),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ])
    const overBytes = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`
    const overText = await sign(SECRET, raw.toString('utf8'))
    for (const [what, signature] of [
      ['the bytes', overBytes],
      ['the decoded text', overText],
    ]) {
      const id = randomUUID()
      const res = await delivery(app, { id, body: raw, signature: signature as string })
      t.equal(res.statusCode, 401, `signed over ${what}`)
      t.equal(res.json().code, 'INVALID_SIGNATURE')
      t.equal(await findWebhookDelivery(app.db, id), undefined, 'not stored')
    }
  })

  t.test('unknown events and unused actions → 202 ignored, never queued', async (t) => {
    for (const [event, payload] of [
      ['ping', { zen: 'Design for failure.', hook_id: 42 }],
      ['issues', { action: 'opened' }],
      ['pull_request', { action: 'opened', number: 3 }],
      ['repository', { action: 'archived', repository: { id: 1 } }],
    ] as const) {
      const id = randomUUID()
      const res = await delivery(app, { id, event, payload })
      t.equal(res.statusCode, 202, `${event} ${res.body}`)
      t.same(res.json(), { delivery_id: id, status: 'ignored' })
      const row = await findWebhookDelivery(app.db, id)
      t.equal(row?.outcome, 'ignored')
      t.ok(row?.processed_at)
      t.notOk(await app.queues.webhooks.getJob(webhookJobId(id)), `${event}: no job`)
    }
  })

  t.test('push, installation and authorization events are queued for their handlers', async (t) => {
    for (const [event, payload] of [
      ['push', { ref: 'refs/heads/main', repository: { id: 700002 } }],
      ['installation', { action: 'deleted', installation: { id: 5550001 } }],
      ['installation_repositories', { action: 'removed', installation: { id: 5550001 } }],
      ['github_app_authorization', { action: 'revoked', sender: { id: 1 } }],
    ] as const) {
      const res = await delivery(app, { event, payload })
      t.equal(res.json().status, 'queued', event)
    }
  })

  t.test('a form-encoded delivery (content_type: form) is verified over its raw body', async (t) => {
    const body = `payload=${encodeURIComponent(JSON.stringify({ action: 'closed', number: 2 }))}`
    const res = await delivery(app, {
      body,
      contentType: 'application/x-www-form-urlencoded',
      signature: await sign(SECRET, body),
    })
    t.equal(res.statusCode, 202, res.body)
    t.equal(res.json().status, 'queued')
  })

  t.test('verified but malformed → 400 with a code, never a 500', async (t) => {
    const notJson = 'not json'
    const res = await delivery(app, { body: notJson, signature: await sign(SECRET, notJson) })
    t.equal(res.statusCode, 400)
    t.equal(res.json().code, 'INVALID_WEBHOOK')
    const array = '[1,2]'
    t.equal((await delivery(app, { body: array, signature: await sign(SECRET, array) })).statusCode, 400)
    const noId = await delivery(app, { id: 'x'.repeat(200) })
    t.equal(noId.statusCode, 400)
    t.equal(noId.json().code, 'INVALID_WEBHOOK')
  })

  t.test('what JSON allows and jsonb refuses is stored, not a 500; absurd nesting is a 400', async (t) => {
    // NUL and a lone surrogate, as a commit message may hold them (escaped in the JSON text).
    const body =
      '{"action":"closed","number":3,"head_commit":{"message":"fix\\u0000 \\ud800 done"},"k\\u0000":1}'
    const id = randomUUID()
    const res = await delivery(app, { id, body })
    t.equal(res.statusCode, 202, res.body)
    const row = await findWebhookDelivery(app.db, id)
    t.same(row?.payload, {
      action: 'closed',
      number: 3,
      head_commit: { message: 'fix\ufffd \ufffd done' },
      'k\ufffd': 1,
    })
    // A `__proto__` key is data, as JSON.parse read it: it neither vanishes nor becomes the prototype.
    const proto = randomUUID()
    t.equal(
      (await delivery(app, { id: proto, body: '{"__proto__":{"action":"created"},"number":1}' })).statusCode,
      202,
    )
    const stored = await findWebhookDelivery(app.db, proto)
    t.equal(stored?.action, null, 'no action was read from the prototype')
    t.same(Object.keys(stored?.payload ?? {}).sort(), ['__proto__', 'number'])
    for (const depth of [101, 5000, 100_000]) {
      const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
      const nested = await delivery(app, { body: deep })
      t.equal(nested.statusCode, 400, `nested ${depth} deep`)
      t.equal(nested.json().code, 'INVALID_WEBHOOK')
    }
  })

  t.test('an unsigned delivery is refused before its body is read', async (t) => {
    const { connect } = await import('node:net')
    const server = await build(t, { GITHUB_WEBHOOK_SECRET: SECRET })
    await server.listen({ host: '127.0.0.1', port: 0 })
    const { port } = server.server.address() as { port: number }
    for (const signature of [undefined, 'sha256=zz']) {
      // Announces 20 MB and sends none of it: the answer must come without the body.
      const socket = connect(port, '127.0.0.1')
      t.teardown(() => socket.destroy())
      const answer = new Promise<string>((resolve) => {
        let text = ''
        socket.on('data', (chunk) => {
          text += chunk.toString()
          if (text.includes('\r\n\r\n') && text.includes('}')) resolve(text)
        })
      })
      socket.write(
        [
          'POST /webhooks/github HTTP/1.1',
          'Host: 127.0.0.1',
          'Content-Type: application/json',
          'X-GitHub-Event: pull_request',
          `X-GitHub-Delivery: ${randomUUID()}`,
          ...(signature ? [`X-Hub-Signature-256: ${signature}`] : []),
          `Content-Length: ${20 * 1024 * 1024}`,
          '',
          '{"action":',
        ].join('\r\n'),
      )
      // A server waiting for the body would answer only at REQUEST_TIMEOUT_MS: fail sooner.
      const text = await Promise.race([
        answer,
        new Promise<string>((resolve) =>
          setTimeout(() => resolve('no answer without the body'), 10_000).unref(),
        ),
      ])
      t.match(text, /^HTTP\/1\.1 401 /, String(signature))
      t.match(text, /"code":"INVALID_SIGNATURE"/, String(signature))
    }
  })

  t.test('bodies over 25 MB → 413', async (t) => {
    const body = `{"action":"closed","pad":"${'x'.repeat(25 * 1024 * 1024)}"}`
    const res = await delivery(app, { body, signature: `sha256=${'0'.repeat(64)}` })
    t.equal(res.statusCode, 413)
    t.equal(res.json().code, 'PAYLOAD_TOO_LARGE')
  })

  t.test('no session, no CSRF check: a cookie and a foreign Origin change nothing', async (t) => {
    const body = JSON.stringify({ action: 'closed', number: 9 })
    const res = await app.inject({
      method: 'POST',
      url: '/webhooks/github',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'pull_request',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': await sign(SECRET, body),
        origin: 'https://evil.example',
      },
      body,
    })
    t.equal(res.statusCode, 202, res.body)
  })
})

t.test('rate limited per client IP → 429 RATE_LIMITED', async (t) => {
  const app = await build(t, { GITHUB_WEBHOOK_SECRET: SECRET, RATE_LIMIT_WEBHOOKS_MAX: '2' })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await delivery(app)).statusCode)
  t.same(statuses, [202, 202, 429])
})
