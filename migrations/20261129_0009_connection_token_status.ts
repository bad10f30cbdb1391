import { type Kysely, sql } from 'kysely'

// Connections over their life (issue 14): a token GitHub rejected (401) is remembered
// (`token_invalid_at`, shown as token_status "invalid"), and a refresh — fetch the default
// branch's latest commit and re-analyse — is tracked beside the analysis it will replace, which
// stays visible until the new one lands.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .addColumn('token_invalid_at', 'timestamptz')
    .addColumn('refresh_status', 'text', (c) =>
      c.check(sql`refresh_status IN ('queued', 'running', 'failed')`),
    )
    .addColumn('refresh_requested_at', 'timestamptz')
    .addColumn('refresh_started_at', 'timestamptz')
    .addColumn('refreshed_at', 'timestamptz')
    .addColumn('refresh_error_code', 'text', (c) => c.check(sql`length(refresh_error_code) <= 64`))
    .addColumn('refresh_error_message', 'text', (c) => c.check(sql`length(refresh_error_message) <= 500`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('github_connections')
    .dropColumn('token_invalid_at')
    .dropColumn('refresh_status')
    .dropColumn('refresh_requested_at')
    .dropColumn('refresh_started_at')
    .dropColumn('refreshed_at')
    .dropColumn('refresh_error_code')
    .dropColumn('refresh_error_message')
    .execute()
}
