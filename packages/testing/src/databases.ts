import { quoteIdent, withServer } from '@portico/db'

/** Creates database `name` on `url`'s server, optionally as a copy of `template` (tests only). */
export async function createDatabase(url: string, name: string, template?: string): Promise<void> {
  await withServer(url, (client) =>
    client.query(`CREATE DATABASE ${quoteIdent(name)}${template ? ` TEMPLATE ${quoteIdent(template)}` : ''}`),
  )
}

/** Drops database `name` on `url`'s server, disconnecting anyone still attached (tests only). */
export async function dropDatabase(url: string, name: string): Promise<void> {
  await withServer(url, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`))
}
