/**
 * `npm run bench`: runs every `scripts/bench/*.bench.ts` in turn (each prints `name: value`
 * lines) against the local Postgres, Redis and the GitHub simulator. Not part of `npm test`:
 * speed and call-count targets are measured here, not asserted in timed tests.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'

const dir = path.join(import.meta.dirname, 'bench')
const only = process.argv.slice(2)
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
let failed = 0
for (const file of files) {
  console.log(`\n## ${file}`)
  const result = spawnSync(process.execPath, [...process.execArgv, path.join(dir, file)], {
    stdio: 'inherit',
  })
  if (result.status !== 0) {
    failed += 1
    console.log(`${file} failed (exit ${result.status ?? result.signal})`)
  }
}
if (files.length === 0) console.log('no benchmarks found')
process.exitCode = failed > 0 ? 1 : 0
