import { randomBytes } from 'node:crypto'
import { loadConfig } from '@portico/core'
import { createDatabase, dropDatabase } from '@portico/testing'
import { sql } from 'kysely'
import t, { type Test } from 'tap'
import {
  createDb,
  type Db,
  databaseUrlFor,
  insertConnection,
  isUniqueViolation,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  ONE_ACTIVE_CONNECTION_INDEX,
  updateConnection,
} from '../src/index.js'

const base = loadConfig({ ...process.env, NODE_ENV: 'test' })

/** A brand-new, empty database for this test, dropped afterwards. */
async function freshDb(t: Test): Promise<Db> {
  const name = `portico_test_db_${randomBytes(4).toString('hex')}`
  await createDatabase(base.DATABASE_URL, name)
  const db = createDb({ DATABASE_URL: databaseUrlFor(base.DATABASE_URL, name), DATABASE_POOL_MAX: 2 })
  t.teardown(async () => {
    await db.destroy()
    await dropDatabase(base.DATABASE_URL, name)
  })
  return db
}

const tables = async (db: Db) =>
  (
    await sql<{ table_name: string }>`select table_name from information_schema.tables
      where table_schema = 'public' and table_name not like 'kysely_%' order by table_name`.execute(db)
  ).rows.map((r) => r.table_name)

t.test('migrations go up, down and up again on a fresh database', async (t) => {
  const db = await freshDb(t)
  await migrateToLatest(db)
  const all = [
    'deployments',
    'github_connections',
    'project_members',
    'projects',
    'tenant_members',
    'tenants',
    'users',
    'webhook_deliveries',
  ]
  t.same(await tables(db), all)
  t.ok(
    (await migrationStatus(db)).every((m) => m.executedAt !== null),
    'every migration ran',
  )

  const status = await migrationStatus(db)
  for (let i = 0; i < status.length; i++) await migrateDown(db)
  t.same(await tables(db), [], 'down removes every table')
  t.ok((await migrationStatus(db)).every((m) => m.executedAt === null))

  await migrateToLatest(db)
  t.same(await tables(db), all, 'up again recreates them')
})

t.test('every foreign key is covered by an index', async (t) => {
  const db = await freshDb(t)
  await migrateToLatest(db)
  const { rows } = await sql<{ table: string; column: string }>`
    select c.conrelid::regclass::text as table, a.attname as column
    from pg_constraint c
    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and not exists (
      select 1 from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1]
    )`.execute(db)
  t.same(rows, [], 'no foreign key without an index leading with its column')
})

t.test('one active connection per project; failed and expired rows do not block', async (t) => {
  const db = await freshDb(t)
  await migrateToLatest(db)
  const tenant = await db
    .insertInto('tenants')
    .values({ slug: 'acme', name: 'Acme' })
    .returningAll()
    .executeTakeFirstOrThrow()
  const project = await db
    .insertInto('projects')
    .values({ tenant_id: tenant.id, name: 'Web', slug: 'web' })
    .returningAll()
    .executeTakeFirstOrThrow()
  const values = {
    tenant_id: tenant.id,
    project_id: project.id,
    repo_url: 'https://github.com/acme/web',
    owner: 'acme',
    repo: 'web',
    encrypted_token: 'v1.x',
  }
  const first = await insertConnection(db, values)
  t.equal(first.status, 'pending')
  const err = await insertConnection(db, values).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(isUniqueViolation(err, ONE_ACTIVE_CONNECTION_INDEX), 'second live connection is refused by the index')

  await updateConnection(db, first.id, { status: 'failed' })
  const second = await insertConnection(db, values)
  t.ok(second.id, 'a failed connection does not block a new one')
  await updateConnection(db, second.id, { status: 'expired' })
  t.ok(await insertConnection(db, values), 'nor does an expired one')
})

t.test('check constraints reject bad values', async (t) => {
  const db = await freshDb(t)
  await migrateToLatest(db)
  await t.rejects(
    db.insertInto('tenants').values({ slug: 'Bad Slug', name: 'x' }).execute(),
    /tenants_slug_check/,
  )
  await db.insertInto('tenants').values({ slug: 'acme', name: 'x' }).execute()
  await t.rejects(
    sql`insert into tenants (slug, name) values ('acme', 'dup')`.execute(db),
    /tenants_slug_lower_key/,
    'slugs are unique',
  )
  await t.rejects(
    sql`insert into deployments (customer, env, instance_name, status) values ('a', 'dev', 'x', 'weird')`.execute(
      db,
    ),
    /deployments_status_check/,
  )
})

t.test('one deploy in flight per pod', async (t) => {
  const db = await freshDb(t)
  await migrateToLatest(db)
  const row = { customer: 'alpha', env: 'dev', instance_name: 'web' }
  const first = await db.insertInto('deployments').values(row).returningAll().executeTakeFirstOrThrow()
  await t.rejects(db.insertInto('deployments').values(row).execute(), /deployments_one_in_flight_per_pod/)
  await db.updateTable('deployments').set({ status: 'succeeded' }).where('id', '=', first.id).execute()
  t.ok(await db.insertInto('deployments').values(row).execute(), 'finished deploys do not block')
})
