import { type Kysely, sql } from 'kysely'

// A connection's PAT is kept no longer than needed: wiped (NULL) when the connection ends
// failed or expired (issue 10, item 16).

export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE github_connections ALTER COLUMN encrypted_token DROP NOT NULL`.execute(db)
  await sql`UPDATE github_connections SET encrypted_token = NULL WHERE status IN ('failed', 'expired')`.execute(
    db,
  )
}

export async function down(db: Kysely<any>): Promise<void> {
  // Ended connections have no token to restore: an empty envelope keeps the constraint satisfiable.
  await sql`UPDATE github_connections SET encrypted_token = '' WHERE encrypted_token IS NULL`.execute(db)
  await sql`ALTER TABLE github_connections ALTER COLUMN encrypted_token SET NOT NULL`.execute(db)
}
