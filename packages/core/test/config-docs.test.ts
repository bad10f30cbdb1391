import { readFileSync } from 'node:fs'
import t from 'tap'
import { ConfigSchema } from '../src/config.js'
import { envExample, withConfigTable } from '../src/config-docs.js'

const root = new URL('../../../', import.meta.url)
const read = (file: string) => readFileSync(new URL(file, root), 'utf8')

t.test('.env.example mirrors the config schema', async (t) => {
  t.equal(read('.env.example'), envExample(), 'regenerate with npm run env:docs')
  for (const name of Object.keys(ConfigSchema.properties)) t.match(read('.env.example'), `${name}=`)
  // A copy used as .env sets nothing by itself (a live PORT or PUBLIC_URL there would stop
  // PUBLIC_URL from following PORT=… given on the command line).
  t.notMatch(read('.env.example'), /^[A-Z][A-Z0-9_]*=/m, 'every assignment is commented out')
})

t.test("README's configuration table mirrors the config schema", async (t) => {
  const readme = read('README.md')
  t.equal(readme, withConfigTable(readme), 'regenerate with npm run env:docs')
  for (const name of Object.keys(ConfigSchema.properties)) t.match(readme, `| \`${name}\` |`)
})

t.test('the README gives the quick-start commands', async (t) => {
  const readme = read('README.md')
  t.match(readme, 'npm install && npm start')
  t.match(readme, 'npm install && npm test')
})
