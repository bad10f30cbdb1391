import pg from 'pg'

/** Returns `url` with its database name replaced. */
export function databaseUrlFor(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${encodeURIComponent(database)}`
  return u.toString()
}

/** The database name in a connection string. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''))
}

/** A PostgreSQL identifier, quoted. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`

/** Runs `fn` with a client on `url`'s server (its `postgres` database), closed afterwards. */
export async function withServer<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: databaseUrlFor(url, 'postgres'),
    connectionTimeoutMillis: 5000,
  })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Creates the database named in `url` unless it exists. Returns whether it was created. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const name = databaseName(url)
  return withServer(url, async (client) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (found.rowCount) return false
    await client.query(`CREATE DATABASE ${quoteIdent(name)}`)
    return true
  })
}
