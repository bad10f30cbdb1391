import { type Kysely, sql } from 'kysely'

// Frozen once shipped: later schema changes go in new, later-dated migrations.

const SLUG_CHECK = sql`~ '^[a-z][a-z0-9-]{1,62}$'`

export async function up(db: Kysely<any>): Promise<void> {
  const id = (col: any) => col.primaryKey().defaultTo(sql`gen_random_uuid()`)
  const now = (col: any) => col.notNull().defaultTo(sql`now()`)

  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', id)
    .addColumn('github_id', 'bigint', (c) => c.notNull().unique())
    .addColumn('login', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('avatar_url', 'text')
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .addColumn('last_login_at', 'timestamptz')
    .execute()
  await sql`CREATE INDEX users_login_lower_idx ON users (lower(login))`.execute(db)

  await db.schema
    .createTable('tenants')
    .addColumn('id', 'uuid', id)
    .addColumn('slug', 'text', (c) => c.notNull().check(sql`slug ${SLUG_CHECK}`))
    .addColumn('name', 'text', (c) => c.notNull().check(sql`length(name) between 1 and 200`))
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .execute()
  await sql`CREATE UNIQUE INDEX tenants_slug_lower_key ON tenants (lower(slug))`.execute(db)

  await db.schema
    .createTable('tenant_members')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('owner', 'admin', 'member')`))
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .addPrimaryKeyConstraint('tenant_members_pkey', ['tenant_id', 'user_id'])
    .execute()
  await db.schema.createIndex('tenant_members_user_id_idx').on('tenant_members').column('user_id').execute()

  await db.schema
    .createTable('projects')
    .addColumn('id', 'uuid', id)
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull().check(sql`length(name) between 1 and 200`))
    .addColumn('slug', 'text', (c) => c.notNull().check(sql`slug ${SLUG_CHECK}`))
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .addUniqueConstraint('projects_tenant_id_slug_key', ['tenant_id', 'slug'])
    .execute()

  await db.schema
    .createTable('project_members')
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`role in ('owner', 'admin', 'pm-csm', 'qa-manual', 'qa-automation', 'developer', 'viewer')`,
        ),
    )
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .addPrimaryKeyConstraint('project_members_pkey', ['project_id', 'user_id'])
    .execute()
  await db.schema.createIndex('project_members_user_id_idx').on('project_members').column('user_id').execute()

  await db.schema
    .createTable('github_connections')
    .addColumn('id', 'uuid', id)
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('repo_url', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('repo', 'text', (c) => c.notNull())
    .addColumn('default_branch', 'text')
    .addColumn('encrypted_token', 'text', (c) => c.notNull())
    .addColumn('token_kind', 'text')
    .addColumn('token_expires_at', 'timestamptz')
    .addColumn('clone_path', 'text')
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('pending')
        .check(sql`status in ('pending', 'cloning', 'cloned', 'analyzed', 'failed', 'expired')`),
    )
    .addColumn('progress', 'smallint', (c) => c.notNull().defaultTo(0).check(sql`progress between 0 and 100`))
    .addColumn('commit_sha', 'text')
    .addColumn('routes_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('components_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('endpoints_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('analysis_summary', 'jsonb')
    .addColumn('error_message', 'text', (c) => c.check(sql`length(error_message) <= 500`))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .execute()
  // One live connection per project; failed and expired rows are history and do not block a new one.
  await sql`CREATE UNIQUE INDEX github_connections_one_active_per_project
    ON github_connections (project_id) WHERE status NOT IN ('failed', 'expired')`.execute(db)
  await sql`CREATE INDEX github_connections_project_recent_idx
    ON github_connections (project_id, created_at DESC)`.execute(db)
  await db.schema
    .createIndex('github_connections_tenant_id_idx')
    .on('github_connections')
    .column('tenant_id')
    .execute()
  await db.schema
    .createIndex('github_connections_created_by_idx')
    .on('github_connections')
    .column('created_by')
    .execute()
  // Serves the hourly expiry sweep without scanning live history.
  await sql`CREATE INDEX github_connections_expiry_idx
    ON github_connections (expires_at) WHERE status IN ('cloned', 'analyzed')`.execute(db)

  await db.schema
    .createTable('deployments')
    .addColumn('id', 'uuid', id)
    .addColumn('customer', 'text', (c) => c.notNull())
    .addColumn('env', 'text', (c) => c.notNull())
    .addColumn('instance_name', 'text', (c) => c.notNull())
    .addColumn('waf_enabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('mode', 'text', (c) => c.check(sql`mode in ('new', 'edit')`))
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('queued').check(sql`status in ('queued', 'running', 'succeeded', 'failed')`),
    )
    .addColumn('branch', 'text')
    .addColumn('pr_url', 'text')
    .addColumn('pr_number', 'integer')
    .addColumn('commit_message', 'text')
    .addColumn('error_message', 'text')
    .addColumn('requested_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('encrypted_token', 'text')
    .addColumn('created_at', 'timestamptz', now)
    .addColumn('updated_at', 'timestamptz', now)
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute()
  await sql`CREATE INDEX deployments_pod_recent_idx ON deployments (customer, env, created_at DESC)`.execute(
    db,
  )
  await db.schema
    .createIndex('deployments_requested_by_idx')
    .on('deployments')
    .column('requested_by')
    .execute()
  // At most one deploy in flight per pod.
  await sql`CREATE UNIQUE INDEX deployments_one_in_flight_per_pod
    ON deployments (customer, env) WHERE status IN ('queued', 'running')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'deployments',
    'github_connections',
    'project_members',
    'projects',
    'tenant_members',
    'tenants',
    'users',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
