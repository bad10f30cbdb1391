/**
 * `npm run env:docs`: regenerates `.env.example` and the README's configuration table from the
 * config schema. `--check` exits 1 when either is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { envExample, withConfigTable } from '@portico/core'

const check = process.argv.includes('--check')
const wanted = {
  '.env.example': envExample(),
  'README.md': withConfigTable(readFileSync('README.md', 'utf8')),
}
let stale = false
for (const [file, text] of Object.entries(wanted)) {
  let current = ''
  try {
    current = readFileSync(file, 'utf8')
  } catch {}
  if (current === text) continue
  if (check) {
    console.error(`${file} is out of date: run npm run env:docs`)
    stale = true
  } else {
    writeFileSync(file, text)
    console.log(`wrote ${file}`)
  }
}
process.exitCode = stale ? 1 : 0
