import { type Kysely, sql } from 'kysely'

// Deploy outcomes the waiting POST /api/pod maps back to HTTP, and whose token a job acts with.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('deployments')
    .addColumn('error_code', 'text')
    .addColumn('error_status', 'smallint', (c) => c.check(sql`error_status between 400 and 599`))
    .addColumn('token_source', 'text', (c) =>
      c.notNull().defaultTo('service').check(sql`token_source in ('user', 'service')`),
    )
    .execute()
  await sql`ALTER TABLE deployments ADD CONSTRAINT deployments_error_message_length
    CHECK (length(error_message) <= 500)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE deployments DROP CONSTRAINT deployments_error_message_length`.execute(db)
  await db.schema
    .alterTable('deployments')
    .dropColumn('error_code')
    .dropColumn('error_status')
    .dropColumn('token_source')
    .execute()
}
