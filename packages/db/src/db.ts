import { Kysely, type Kysely as KyselyType, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.js'

/** A database handle or an open transaction: repository functions accept either. */
export type Executor = KyselyType<Database> | Transaction<Database>
export type Db = KyselyType<Database>

const INT8_OID = 20

/**
 * Opens a Kysely instance over a pg pool. `bigint` columns (GitHub ids) come back as numbers:
 * GitHub ids stay far below 2^53.
 */
export function createDb(config: { DATABASE_URL: string; DATABASE_POOL_MAX?: number }): Db {
  const pool = new pg.Pool({
    connectionString: config.DATABASE_URL,
    max: config.DATABASE_POOL_MAX ?? 10,
    connectionTimeoutMillis: 5000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  })
  // An idle client losing its server must not crash the process; the pool replaces it.
  pool.on('error', () => {})
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}
