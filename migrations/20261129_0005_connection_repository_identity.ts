import { type Kysely, sql } from 'kysely'

// A connected repository is known by GitHub's numeric id (names change on rename and transfer),
// with its canonical `owner/name` as GitHub last reported it; failures carry a stable code.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .addColumn('github_repo_id', 'bigint', (c) => c.check(sql`github_repo_id > 0`))
    .addColumn('repo_full_name', 'text', (c) => c.check(sql`length(repo_full_name) <= 140`))
    .addColumn('error_code', 'text', (c) => c.check(sql`length(error_code) <= 64`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .dropColumn('github_repo_id')
    .dropColumn('repo_full_name')
    .dropColumn('error_code')
    .execute()
}
