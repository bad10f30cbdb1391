import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createRedis, decrypt, encrypt, generateKey, parseKeyring, sessionKeyPrefix } from '@portico/core'
import { findConnection, findDeployment, insertDeployment, rotateStoredTokens } from '@portico/db'
import { testConfig } from '@portico/testing'
import type { Job } from 'bullmq'
import t from 'tap'
import { maintenanceProcessor, maintenanceScheduled } from '../src/processors/maintenance.processor.js'
import { createConnection, openDb, workerContext } from './fixtures/connections.js'

const OLD = generateKey()
const NEW = generateKey()
const GONE = generateKey()
const oldRing = parseKeyring(`old:${OLD}`)
const rotatingRing = parseKeyring(`new:${NEW},old:${OLD}`)
const newOnly = parseKeyring(`new:${NEW}`)

t.test(
  'rotate-keys re-encrypts connections, deployments and sessions; a second run changes nothing',
  async (t) => {
    // The worker runs with the rotating ring (new key active, old still readable).
    const ctx = await workerContext(t, { TOKEN_ENCRYPTION_KEYS: `new:${NEW},old:${OLD}` })
    const { config, db, redis, queues } = ctx

    // Seeded as an older deployment would have: encrypted with the old key.
    const oldConfig = { ...config, keyring: oldRing }
    const connections = []
    for (let i = 0; i < 5; i++) {
      connections.push(await createConnection(db, oldConfig, { token: `ghp_conn${i}`, repo: `r${i}` }))
    }
    const already = await createConnection(db, config, { token: 'ghp_already', repo: 'already' })
    const unreadable = await createConnection(
      db,
      { ...config, keyring: parseKeyring(`gone:${GONE}`) },
      {
        token: 'ghp_gone',
        repo: 'gone',
      },
    )
    const deployments = []
    for (let i = 0; i < 3; i++) {
      deployments.push(
        await insertDeployment(db, {
          customer: `c${i}`,
          env: 'dev',
          instance_name: `c${i}-dev-01`,
          encrypted_token: encrypt(oldRing, `gho_dep${i}`),
        }),
      )
    }
    const wiped = await insertDeployment(db, { customer: 'done', env: 'dev', instance_name: 'done-dev-01' })

    const prefix = sessionKeyPrefix(config.REDIS_PREFIX)
    const sessionOf = (token?: string) =>
      JSON.stringify({
        cookie: { originalMaxAge: 1000 },
        user: { id: 'u', login: 'octocat' },
        githubToken: token,
      })
    for (let i = 0; i < 4; i++)
      await redis.set(`${prefix}s${i}`, sessionOf(encrypt(oldRing, `gho_s${i}`)), 'EX', 1000)
    await redis.set(`${prefix}fresh`, sessionOf(encrypt(rotatingRing, 'gho_fresh')), 'EX', 1000)
    await redis.set(`${prefix}state-only`, JSON.stringify({ cookie: {}, state: 'x' }), 'EX', 600)
    await redis.set(`${prefix}ended:s9`, '1', 'EX', 1000)

    // First run in small batches, so paging is exercised.
    const first = await rotateStoredTokens({
      db,
      redis,
      queuePrefix: config.REDIS_PREFIX,
      keyring: rotatingRing,
      batchSize: 2,
    })
    t.equal(first.github_connections.rotated, 5)
    t.equal(
      first.github_connections.failed,
      1,
      'an envelope under a key the ring lacks is reported, not fatal',
    )
    t.same(first.github_connections.byKeyId, { new: 6, gone: 1 })
    t.equal(first.deployments.rotated, 3)
    t.same(first.deployments.byKeyId, { new: 3 }, 'wiped tokens are not counted')
    t.equal(first.sessions.rotated, 4)
    t.same(first.sessions.byKeyId, { new: 5 })
    t.same(first.byKeyId, { new: 14, gone: 1 })

    // Everything decrypts with the new key alone: the old key can be retired.
    for (const [i, row] of connections.entries()) {
      const after = await findConnection(db, row.id)
      t.equal(decrypt(newOnly, after!.encrypted_token!), `ghp_conn${i}`)
    }
    t.equal(
      (await findConnection(db, already.id))?.encrypted_token,
      already.encrypted_token,
      'a token already on the active key is left byte for byte',
    )
    t.equal((await findConnection(db, unreadable.id))?.encrypted_token, unreadable.encrypted_token)
    for (const [i, row] of deployments.entries()) {
      t.equal(decrypt(newOnly, (await findDeployment(db, row.id))!.encrypted_token!), `gho_dep${i}`)
    }
    t.equal((await findDeployment(db, wiped.id))?.encrypted_token, null)
    for (let i = 0; i < 4; i++) {
      const sess = JSON.parse((await redis.get(`${prefix}s${i}`))!)
      t.equal(decrypt(newOnly, sess.githubToken), `gho_s${i}`)
      t.same(sess.user, { id: 'u', login: 'octocat' }, 'the rest of the session is kept')
      const ttl = await redis.pttl(`${prefix}s${i}`)
      t.ok(ttl > 900_000 && ttl <= 1_000_000, `the session keeps its lifetime (${ttl} ms)`)
    }
    t.equal(await redis.get(`${prefix}ended:s9`), '1', 'tombstones are left alone')
    t.same(JSON.parse((await redis.get(`${prefix}state-only`))!), { cookie: {}, state: 'x' })

    // Second run, as the daily maintenance task: nothing left to do.
    const snapshot = await db
      .selectFrom('github_connections')
      .select(['id', 'encrypted_token'])
      .orderBy('id')
      .execute()
    const sessionsBefore = await redis.mget(`${prefix}s0`, `${prefix}s1`, `${prefix}fresh`)
    const process = maintenanceProcessor(ctx)
    await maintenanceScheduled.get(ctx)
    const second = (await process(
      { data: { task: 'rotate-keys' } } as Job,
      undefined,
      undefined as never,
    )) as Awaited<ReturnType<typeof rotateStoredTokens>>
    t.equal(second.github_connections.rotated + second.deployments.rotated + second.sessions.rotated, 0)
    t.same(second.byKeyId, { new: 14, gone: 1 })
    t.same(
      await db.selectFrom('github_connections').select(['id', 'encrypted_token']).orderBy('id').execute(),
      snapshot,
      'the second run changes no row',
    )
    t.same(
      await redis.mget(`${prefix}s0`, `${prefix}s1`, `${prefix}fresh`),
      sessionsBefore,
      'nor any session',
    )
    const schedulers = await queues.maintenance.getJobSchedulers()
    t.ok(
      schedulers.some((s) => s.key === 'rotate-keys'),
      'rotate-keys is scheduled with the other maintenance tasks',
    )
  },
)

t.test('a session changed between read and write is not overwritten', async (t) => {
  const config = await testConfig(t, { TOKEN_ENCRYPTION_KEYS: `new:${NEW},old:${OLD}` })
  const db = openDb(t, config)
  const redis = createRedis(config.REDIS_URL, 'worker')
  t.teardown(() => redis.disconnect())
  const prefix = sessionKeyPrefix(config.REDIS_PREFIX)
  const key = `${prefix}busy`
  await redis.set(key, JSON.stringify({ githubToken: encrypt(oldRing, 'gho_before') }), 'EX', 1000)
  // A concurrent save lands between the rotation's MGET and its compare-and-set.
  const mget = redis.mget.bind(redis)
  const raced = JSON.stringify({ githubToken: encrypt(oldRing, 'gho_after'), user: { id: 'v' } })
  redis.mget = (async (...args: Parameters<typeof redis.mget>) => {
    const values = await (mget as (...a: unknown[]) => Promise<(string | null)[]>)(...args)
    await redis.set(key, raced, 'KEEPTTL')
    return values
  }) as typeof redis.mget
  const report = await rotateStoredTokens({
    db,
    redis,
    queuePrefix: config.REDIS_PREFIX,
    keyring: rotatingRing,
  })
  t.equal(report.sessions.rotated, 0)
  t.equal(report.sessions.raced, 1)
  t.same(report.sessions.byKeyId, { old: 1 }, 'the session still on the old key is reported as such')
  t.equal(await redis.get(key), raced, 'the concurrent write stands')
})

const cli = fileURLToPath(new URL('../../../packages/db/src/keys-rotate.cli.ts', import.meta.url))

/** Runs `npm run keys:rotate`'s entry point with `env`; resolves with its exit code and output. */
function runCli(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, cli], {
      env: { ...process.env, NODE_ENV: 'test', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, out }))
  })
}

t.test(
  'npm run keys:rotate rotates, reports counts per key id, and exits 0 once only the active key is left',
  async (t) => {
    const config = await testConfig(t, { TOKEN_ENCRYPTION_KEYS: `new:${NEW},old:${OLD}` })
    const db = openDb(t, config)
    const redis = createRedis(config.REDIS_URL, 'worker')
    t.teardown(() => redis.disconnect())
    const row = await createConnection(db, { ...config, keyring: oldRing }, { token: 'ghp_cli' })
    const prefix = sessionKeyPrefix(config.REDIS_PREFIX)
    await redis.set(`${prefix}cli`, JSON.stringify({ githubToken: encrypt(oldRing, 'gho_cli') }), 'EX', 1000)
    const env = {
      DATABASE_URL: config.DATABASE_URL,
      REDIS_URL: config.REDIS_URL,
      REDIS_PREFIX: config.REDIS_PREFIX,
      TOKEN_ENCRYPTION_KEYS: `new:${NEW},old:${OLD}`,
    }
    const first = await runCli(env)
    t.equal(first.code, 0, first.out)
    t.match(first.out, /github_connections: rotated 1,/)
    t.match(first.out, /sessions: rotated 1,/)
    t.match(first.out, /envelopes by key id: \{"new":2\}/)
    t.notMatch(first.out, /ghp_cli|gho_cli/, 'no token in the output')
    t.equal(decrypt(newOnly, (await findConnection(db, row.id))!.encrypted_token!), 'ghp_cli')

    // A token under a key the ring cannot read is reported, and the exit code says so.
    await createConnection(
      db,
      { ...config, keyring: parseKeyring(`gone:${GONE}`) },
      { token: 'ghp_x', repo: 'x' },
    )
    const second = await runCli(env)
    t.equal(second.code, 2, second.out)
    t.match(second.out, /github_connections: rotated 0, undecryptable 1,/)
    t.match(second.out, /still in use besides the active key: gone/)
  },
)
