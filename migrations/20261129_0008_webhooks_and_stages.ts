import { type Kysely, sql } from 'kysely'

// GitHub webhook deliveries (stored before processing, so a delivery is handled once however
// often GitHub sends it) and deployments followed past "PR opened": merged, applied by the specs
// repository's checks, or closed, plus what the reconciler needs for conditional requests.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('delivery_id', 'text', (c) => c.notNull().unique().check(sql`length(delivery_id) <= 100`))
    .addColumn('event', 'text', (c) => c.notNull().check(sql`length(event) <= 100`))
    .addColumn('action', 'text', (c) => c.check(sql`length(action) <= 100`))
    .addColumn('hook_id', 'bigint')
    .addColumn('installation_id', 'bigint')
    .addColumn('repository_id', 'bigint')
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('processed_at', 'timestamptz')
    .addColumn('outcome', 'text', (c) =>
      c.notNull().defaultTo('queued').check(sql`outcome in ('queued', 'processed', 'ignored', 'failed')`),
    )
    .addColumn('result', 'text', (c) => c.check(sql`length(result) <= 500`))
    .addColumn('error', 'text', (c) => c.check(sql`length(error) <= 500`))
    .execute()
  await db.schema
    .createIndex('webhook_deliveries_received_at_idx')
    .on('webhook_deliveries')
    .column('received_at')
    .execute()

  await db.schema
    .alterTable('deployments')
    .addColumn('stage', 'text', (c) =>
      c.check(sql`stage in ('pr_open', 'merged', 'applied', 'apply_failed', 'closed')`),
    )
    .addColumn('merged_at', 'timestamptz')
    .addColumn('merge_commit_sha', 'text', (c) => c.check(sql`merge_commit_sha ~ '^[0-9a-f]{40}$'`))
    .addColumn('applied_at', 'timestamptz')
    .addColumn('checks', 'jsonb')
    .addColumn('superseded_by', 'uuid', (c) => c.references('deployments.id').onDelete('set null'))
    // ETags of the GitHub resources the reconciler last saw ({ pull, check_runs, status }).
    .addColumn('github_etags', 'jsonb')
    .addColumn('reconciled_at', 'timestamptz')
    .execute()
  // Pull requests opened before this migration are open as far as Portico knows.
  await sql`UPDATE deployments SET stage = 'pr_open' WHERE status = 'succeeded' AND pr_number IS NOT NULL`.execute(
    db,
  )
  await sql`CREATE INDEX deployments_followed_stage_idx ON deployments (stage)
    WHERE stage IN ('pr_open', 'merged')`.execute(db)
  await sql`CREATE INDEX deployments_merge_commit_sha_idx ON deployments (merge_commit_sha)
    WHERE merge_commit_sha IS NOT NULL`.execute(db)
  await sql`CREATE INDEX deployments_pr_number_idx ON deployments (pr_number)
    WHERE pr_number IS NOT NULL`.execute(db)
  // Covers the foreign key (deleting a deployment looks its supersedes up).
  await sql`CREATE INDEX deployments_superseded_by_idx ON deployments (superseded_by)
    WHERE superseded_by IS NOT NULL`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX deployments_superseded_by_idx`.execute(db)
  await sql`DROP INDEX deployments_pr_number_idx`.execute(db)
  await sql`DROP INDEX deployments_merge_commit_sha_idx`.execute(db)
  await sql`DROP INDEX deployments_followed_stage_idx`.execute(db)
  await db.schema
    .alterTable('deployments')
    .dropColumn('stage')
    .dropColumn('merged_at')
    .dropColumn('merge_commit_sha')
    .dropColumn('applied_at')
    .dropColumn('checks')
    .dropColumn('superseded_by')
    .dropColumn('github_etags')
    .dropColumn('reconciled_at')
    .execute()
  await db.schema.dropTable('webhook_deliveries').execute()
}
