import { type Kysely, sql } from 'kysely'

// Issue 12: API processes keep project access and connection status in memory and must drop an
// entry as soon as its rows change, whoever changed them (another API process, the worker, psql).
// Postgres tells every listener on channel `portico_changes`, at commit:
//   - `github_connections:<project_id>` for each changed connection row (old and new project);
//   - `access` once per statement touching tenants, projects, tenant_members or project_members;
//   - `*` (everything) when github_connections is truncated.
// NOTIFY folds identical payloads within a transaction, so a busy job's writes stay cheap.

const ACCESS_TABLES = ['tenants', 'projects', 'tenant_members', 'project_members'] as const

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION portico_notify_connection_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('portico_changes', 'github_connections:' || OLD.project_id::text);
      END IF;
      IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('portico_changes', 'github_connections:' || NEW.project_id::text);
      END IF;
      RETURN NULL;
    END $$`.execute(db)
  await sql`
    CREATE TRIGGER github_connections_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON github_connections
    FOR EACH ROW EXECUTE FUNCTION portico_notify_connection_change()`.execute(db)
  await sql`
    CREATE FUNCTION portico_notify_access_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('portico_changes', TG_ARGV[0]);
      RETURN NULL;
    END $$`.execute(db)
  for (const table of ACCESS_TABLES) {
    await sql`
      CREATE TRIGGER ${sql.raw(`${table}_notify_access_change`)}
      AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${sql.table(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION portico_notify_access_change('access')`.execute(db)
  }
  await sql`
    CREATE TRIGGER github_connections_notify_truncate
    AFTER TRUNCATE ON github_connections
    FOR EACH STATEMENT EXECUTE FUNCTION portico_notify_access_change('*')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ACCESS_TABLES) {
    await sql`DROP TRIGGER ${sql.raw(`${table}_notify_access_change`)} ON ${sql.table(table)}`.execute(db)
  }
  await sql`DROP TRIGGER github_connections_notify_truncate ON github_connections`.execute(db)
  await sql`DROP FUNCTION portico_notify_access_change()`.execute(db)
  await sql`DROP TRIGGER github_connections_notify_change ON github_connections`.execute(db)
  await sql`DROP FUNCTION portico_notify_connection_change()`.execute(db)
}
