import { type Kysely, sql } from 'kysely'

// A GitHub login belongs to one account at a time, but can be renamed away and re-registered by
// someone else. `login_released_at` marks a user row whose login has since been signed in with by
// a different GitHub id: that row keeps its memberships (bound to its GitHub id), and members
// added by login resolve only to the current holder.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('login_released_at', 'timestamptz').execute()
  // Existing duplicates: the most recently seen row holds the login.
  await sql`UPDATE users u SET login_released_at = now()
    WHERE EXISTS (
      SELECT 1 FROM users v
      WHERE lower(v.login) = lower(u.login) AND v.id <> u.id
        AND (v.updated_at > u.updated_at OR (v.updated_at = u.updated_at AND v.id > u.id))
    )`.execute(db)
  await sql`CREATE UNIQUE INDEX users_login_holder_key ON users (lower(login))
    WHERE login_released_at IS NULL`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX users_login_holder_key`.execute(db)
  await db.schema.alterTable('users').dropColumn('login_released_at').execute()
}
