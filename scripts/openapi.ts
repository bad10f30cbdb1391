/**
 * `npm run openapi`: writes the API's OpenAPI document (what `GET /docs/json` serves) to
 * docs/openapi.json. `npm run openapi -- --check` exits 1 when the committed file is out of date
 * (CI runs it). Builds the real app against a throw-away database and Redis prefix.
 */
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { testConfig } from '@portico/testing'
import Fastify from 'fastify'
import app from '../apps/api/src/app.js'
import { serverOptions } from '../apps/api/src/server-options.js'

const file = path.join(import.meta.dirname, '..', 'docs', 'openapi.json')
const teardowns: (() => unknown)[] = []
let code = 0
try {
  // Fixed values so the document does not depend on this machine's environment.
  const config = await testConfig(
    { teardown: (fn) => void teardowns.push(fn) },
    { GH_REPO: 'acme/infra-specs', PUBLIC_URL: 'http://localhost:3000' },
  )
  const api = Fastify(serverOptions(config, false))
  teardowns.push(() => api.close())
  await api.register(app, { config })
  await api.ready()
  const text = `${JSON.stringify(api.swagger(), null, 2)}\n`
  if (process.argv.includes('--check')) {
    const committed = await readFile(file, 'utf8').catch(() => '')
    if (committed !== text) {
      console.error('docs/openapi.json is out of date: run `npm run openapi` and commit it')
      code = 1
    } else console.log('docs/openapi.json is up to date')
  } else {
    await writeFile(file, text)
    console.log(`wrote ${path.relative(process.cwd(), file)}`)
  }
} finally {
  for (const fn of teardowns.reverse()) await fn()
}
process.exit(code)
