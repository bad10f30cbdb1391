import { testConfig } from '@portico/testing'
import { sql } from 'kysely'
import t, { type Test } from 'tap'
import { createDb, transactionWithRetry, upsertUserFromGithub } from '../src/index.js'

const config = await testConfig(t)
const db = createDb(config)
t.teardown(() => db.destroy())

/** The next `times` writes to `users` fail as Postgres fails a transaction it ends for another. */
async function conflictOnUsers(t: Test, sqlstate: '40P01' | '40001', times: number) {
  // A sequence is not rolled back with the failed statement, so it counts failures across runs.
  await sql`create sequence users_conflict`.execute(db)
  await sql
    .raw(`create function users_conflict() returns trigger language plpgsql as $$
      begin
        if nextval('users_conflict') <= ${times} then
          raise exception 'another transaction went first' using errcode = '${sqlstate}';
        end if;
        return new;
      end $$`)
    .execute(db)
  await sql`create trigger users_conflict before insert or update on users
    for each row execute function users_conflict()`.execute(db)
  t.teardown(async () => {
    await sql`drop trigger if exists users_conflict on users`.execute(db)
    await sql`drop function if exists users_conflict()`.execute(db)
    await sql`drop sequence if exists users_conflict`.execute(db)
  })
}

const profile = { id: 4_200_001, login: 'retried', name: null, avatar_url: null }

t.test('a sign-in whose upsert meets a deadlock is run again and succeeds', async (t) => {
  await conflictOnUsers(t, '40P01', 2)
  const retries: [string, number][] = []
  const user = await upsertUserFromGithub(db, profile, {
    onRetry: (err, attempt) => retries.push([(err as { code: string }).code, attempt]),
  })
  t.same(
    retries,
    [
      ['40P01', 1],
      ['40P01', 2],
    ],
    'each conflict is reported before the run again',
  )
  t.match(user, { github_id: 4_200_001, login: 'retried' })
  const rows = await db.selectFrom('users').select('login').where('github_id', '=', 4_200_001).execute()
  t.same(rows, [{ login: 'retried' }], 'one row: the failed runs left nothing')
})

t.test('conflicts past the attempts, and other errors, are not retried away', async (t) => {
  await upsertUserFromGithub(db, { ...profile, id: 4_200_002, login: 'conflicted' })
  await conflictOnUsers(t, '40001', 3)
  let runs = 0
  await t.rejects(
    transactionWithRetry(db, async (trx) => {
      runs += 1
      await trx.updateTable('users').set({ name: 'x' }).where('github_id', '=', 4_200_002).execute()
    }),
    { code: '40001' },
  )
  t.equal(runs, 3, 'three runs in all')
  runs = 0
  await t.rejects(
    transactionWithRetry(db, async () => {
      runs += 1
      throw Object.assign(new Error('unique'), { code: '23505' })
    }),
    { code: '23505' },
  )
  t.equal(runs, 1, 'not a conflict: run once')
})

t.test('inside a transaction already, the work runs once in it', async (t) => {
  let runs = 0
  await t.rejects(
    db.transaction().execute((trx) =>
      transactionWithRetry(trx, async () => {
        runs += 1
        throw Object.assign(new Error('deadlock'), { code: '40P01' })
      }),
    ),
    { code: '40P01' },
  )
  t.equal(runs, 1)
})
