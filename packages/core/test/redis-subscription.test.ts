import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { createRedis, inheritedEnv, loadConfig, subscribeChannel } from '../src/index.js'

// subscribeChannel: re-subscribes by itself after every reconnection, says when nothing can have
// been missed (onSubscribed) and when something may be (onLost), warns once per outage.
// Only channels are used (no keys): a random name per run keeps runs apart.
const config = loadConfig({ ...inheritedEnv(['REDIS_URL']), NODE_ENV: 'test' })
const run = `portico-test-${randomBytes(4).toString('hex')}`
const redis = createRedis(config.REDIS_URL, 'worker')
t.teardown(() => redis.quit())

const until = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}
const recorder = (name: string) => {
  const events: string[] = []
  const warnings: string[] = []
  const channel = `${run}:${name}`
  const connectionName = `${run}-${name}`
  return {
    channel,
    connectionName,
    events,
    warnings,
    opts: {
      redisUrl: config.REDIS_URL,
      connectionName,
      channel,
      what: name,
      log: { warn: (_obj: object, message: string) => warnings.push(message) },
      onSubscribed: () => events.push('subscribed'),
      onLost: () => events.push('lost'),
      onMessage: (message: Buffer | Buffer[] | null) => events.push(`message ${String(message)}`),
    },
  }
}
const clientId = async (name: string) => {
  const list = String(await redis.client('LIST'))
  return new RegExp(`id=(\\d+) .*name=${name} `).exec(list)?.[1]
}

t.test('messages after a reconnection arrive; the gap is reported on both sides', async (t) => {
  const r = recorder('resubscribe')
  const sub = subscribeChannel(r.opts)
  t.teardown(() => sub.close())
  t.ok(await sub.whenSubscribed(5000), 'live once subscribed')
  await redis.publish(r.channel, 'one')
  await until(() => r.events.includes('message one'), 'the first message')

  const id = await clientId(r.connectionName)
  t.ok(id)
  await redis.client('KILL', 'ID', String(id))
  await until(() => r.events.filter((e) => e === 'subscribed').length === 2, 'the second subscription')
  t.not(await clientId(r.connectionName), id, 'a new connection')
  await redis.publish(r.channel, 'two')
  await until(() => r.events.includes('message two'), 'the second message')
  t.same(r.events, ['subscribed', 'message one', 'lost', 'subscribed', 'message two'])
  t.ok(sub.live)
})

t.test('prepare runs on each connection before it subscribes', async (t) => {
  const r = recorder('prepare')
  const prepared: number[] = []
  const sub = subscribeChannel<number>({
    ...r.opts,
    prepare: async (connection) => (await connection.client('ID')) as number,
    onSubscribed: (id) => prepared.push(id),
  })
  t.teardown(() => sub.close())
  await sub.whenSubscribed(5000)
  t.same(prepared, [Number(await clientId(r.connectionName))], 'the id of the subscribed connection')
})

t.test('Redis away: one warning per outage, none after close', async (t) => {
  const r = recorder('away')
  // Nothing listens on port 1: every reconnection attempt fails.
  const sub = subscribeChannel({ ...r.opts, redisUrl: 'redis://127.0.0.1:1' })
  t.equal(await sub.whenSubscribed(600), false, 'not subscribed')
  await until(() => r.warnings.length > 0, 'a warning')
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(r.warnings.length, 1, `one warning over several attempts (${r.warnings.join(' | ')})`)
  t.match(r.warnings[0], /^away: /)
  sub.close()
  t.equal(sub.live, false)
  t.same(r.events, [], 'never subscribed, so never lost')
})

t.test('closed: no callback and no warning afterwards', async (t) => {
  const r = recorder('closed')
  const sub = subscribeChannel(r.opts)
  await sub.whenSubscribed(5000)
  sub.close()
  t.equal(sub.live, false)
  await redis.publish(r.channel, 'late')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(r.events, ['subscribed'], 'no message and no loss reported after close')
  t.same(r.warnings, [])
  t.equal(await sub.whenSubscribed(1000), false, 'resolves at once when closed')
})

/** A subscription (heartbeat 100 ms) whose first `prepare` does `first`; later ones succeed. */
const firstPrepare = (t: Test, name: string, first: () => Promise<void>) => {
  const r = recorder(name)
  let calls = 0
  const sub = subscribeChannel({
    ...r.opts,
    heartbeatMs: 100,
    prepare: async () => {
      calls += 1
      if (calls === 1) await first()
    },
  })
  t.teardown(() => sub.close())
  return { r, sub, calls: () => calls }
}

t.test('a connection that does not subscribe in time is opened again', async (t) => {
  // Stuck in prepare (as on a path gone dark during the handshake): nothing else would notice.
  const { r, sub, calls } = firstPrepare(t, 'stuck', () => new Promise(() => {}))
  t.ok(await sub.whenSubscribed(5000), 'subscribed on the next connection')
  t.equal(calls(), 2)
  t.same(r.events, ['subscribed'])
  t.match(r.warnings, [/not subscribed within 3 heartbeats/])
})

t.test('a failed prepare is tried again on a new connection', async (t) => {
  const { r, sub, calls } = firstPrepare(t, 'retry', async () => {
    throw new Error('BUSY Redis is busy running a script')
  })
  t.ok(await sub.whenSubscribed(5000), 'subscribed after the failure')
  t.equal(calls(), 2)
  t.match(r.warnings[0], /could not subscribe/)
})

t.test('a subscription started on a lost connection does not spill onto the next one', async (t) => {
  // prepare outlives its connection: its SUBSCRIBE, sent late, would wait for the next connection
  // and put it in subscriber mode before that connection's own prepare (CLIENT ID) ran.
  const r = recorder('spill')
  let calls = 0
  const sub = subscribeChannel<number>({
    ...r.opts,
    heartbeatMs: 100,
    prepare: async (connection) => {
      calls += 1
      const id = (await connection.client('ID')) as number
      if (calls === 1) {
        await redis.client('KILL', 'ID', String(id))
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return id
    },
    onSubscribed: (id) => r.events.push(`subscribed ${id}`),
  })
  t.teardown(() => sub.close())
  await until(() => r.events.length > 0, 'a subscription')
  t.ok(sub.live)
  t.equal(calls, 2)
  t.same(
    r.events,
    [`subscribed ${await clientId(r.connectionName)}`],
    'on the second connection, with its id',
  )
  t.same(r.warnings, [])
})
