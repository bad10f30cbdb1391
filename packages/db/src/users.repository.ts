import { sql } from 'kysely'
import type { Executor } from './db.js'
import type { UserRow } from './schema.js'

/** GitHub's view of a user, as returned by `GET /user`. */
export interface GithubProfile {
  id: number
  login: string
  name: string | null
  avatar_url: string | null
}

/** Inserts or refreshes a user from their GitHub profile and stamps the login time. */
export async function upsertUserFromGithub(db: Executor, profile: GithubProfile): Promise<UserRow> {
  return db
    .insertInto('users')
    .values({
      github_id: profile.id,
      login: profile.login,
      name: profile.name,
      avatar_url: profile.avatar_url,
      last_login_at: sql<Date>`now()` as unknown as Date,
    })
    .onConflict((oc) =>
      oc.column('github_id').doUpdateSet({
        login: profile.login,
        name: profile.name,
        avatar_url: profile.avatar_url,
        last_login_at: sql<Date>`now()` as unknown as Date,
        updated_at: sql<Date>`now()` as unknown as Date,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** A user by id, or undefined. */
export async function findUserById(db: Executor, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The most recently seen user with this login (case-insensitive), or undefined. */
export async function findUserByLogin(db: Executor, login: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql`lower(login)`, '=', login.toLowerCase())
    .orderBy('updated_at', 'desc')
    .limit(1)
    .executeTakeFirst()
}
