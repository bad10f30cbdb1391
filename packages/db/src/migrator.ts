import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, type Kysely, type MigrationResultSet, Migrator } from 'kysely'

/**
 * The migrations folder: the TypeScript sources when running from source, their compiled
 * copies (`migrations/dist`) when running the built packages.
 */
export function migrationsFolder(): string {
  const here = fileURLToPath(import.meta.url)
  const root = path.resolve(path.dirname(here), '../../..')
  return here.endsWith('.ts') ? path.join(root, 'migrations') : path.join(root, 'migrations', 'dist')
}

/** A Kysely migrator over the project's migrations. */
export function createMigrator(db: Kysely<any>, folder = migrationsFolder()): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: folder }),
  })
}

function unwrap(result: MigrationResultSet): MigrationResultSet {
  if (result.error) throw result.error
  return result
}

/** Applies every pending migration; throws the first failure. */
export async function migrateToLatest(db: Kysely<any>, folder?: string): Promise<MigrationResultSet> {
  return unwrap(await createMigrator(db, folder).migrateToLatest())
}

/** Reverts the most recent migration. */
export async function migrateDown(db: Kysely<any>, folder?: string): Promise<MigrationResultSet> {
  return unwrap(await createMigrator(db, folder).migrateDown())
}

/** Every known migration with the time it ran, or null when pending. */
export async function migrationStatus(db: Kysely<any>, folder?: string) {
  const migrations = await createMigrator(db, folder).getMigrations()
  return migrations.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }))
}
