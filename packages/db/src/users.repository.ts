import { sql } from 'kysely'
import type { Executor } from './db.js'
import { transactionWithRetry } from './errors.js'
import type { UserRow } from './schema.js'

/** GitHub's view of a user, as returned by `GET /user`. */
export interface GithubProfile {
  id: number
  login: string
  name: string | null
  avatar_url: string | null
}

/**
 * Inserts or refreshes a user from their GitHub profile and stamps the login time. The user
 * becomes the holder of their login: any other row with that login (another GitHub id: a renamed
 * or re-registered account) is released, keeping its memberships, so a member added by login stays
 * bound to the GitHub id that held it and a later different id with the same login inherits
 * nothing.
 */
export async function upsertUserFromGithub(
  db: Executor,
  profile: GithubProfile,
  opts: { onRetry?: (err: unknown, attempt: number) => void } = {},
): Promise<UserRow> {
  const run = async (trx: Executor) => {
    await trx
      .updateTable('users')
      .set({ login_released_at: new Date() })
      .where(sql`lower(login)`, '=', profile.login.toLowerCase())
      .where('github_id', '<>', profile.id)
      .where('login_released_at', 'is', null)
      .execute()
    return trx
      .insertInto('users')
      .values({
        github_id: profile.id,
        login: profile.login,
        name: profile.name,
        avatar_url: profile.avatar_url,
        last_login_at: new Date(),
      })
      .onConflict((oc) =>
        oc.column('github_id').doUpdateSet({
          login: profile.login,
          name: profile.name,
          avatar_url: profile.avatar_url,
          login_released_at: null,
          last_login_at: new Date(),
          updated_at: new Date(),
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow()
  }
  // Two sign-ins that swap logins can deadlock on each other's rows; the upsert is safe to repeat,
  // and the OAuth code behind it is already spent, so a 409 "try again" could not be acted on.
  return transactionWithRetry(db, run, opts)
}

/**
 * The current holder of this login (case-insensitive): the GitHub id that last signed in with it.
 * A row whose login was since taken by another GitHub id is never returned.
 */
export async function findUserByLogin(db: Executor, login: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql`lower(login)`, '=', login.toLowerCase())
    .where('login_released_at', 'is', null)
    .orderBy('updated_at', 'desc')
    .limit(1)
    .executeTakeFirst()
}
