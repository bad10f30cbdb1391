import { type Kysely, sql } from 'kysely'

// A connection is made with a PAT (stored encrypted) or through a GitHub App installation (no
// token stored: the worker mints a short-lived one per clone).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .addColumn('auth_method', 'text', (c) =>
      c.notNull().defaultTo('pat').check(sql`auth_method in ('pat', 'app')`),
    )
    .addColumn('installation_id', 'bigint', (c) => c.check(sql`installation_id > 0`))
    .execute()
  await db.schema
    .alterTable('github_connections')
    .addCheckConstraint(
      'github_connections_app_has_installation',
      sql`auth_method <> 'app' or installation_id is not null`,
    )
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .dropConstraint('github_connections_app_has_installation')
    .execute()
  await db.schema
    .alterTable('github_connections')
    .dropColumn('auth_method')
    .dropColumn('installation_id')
    .execute()
}
