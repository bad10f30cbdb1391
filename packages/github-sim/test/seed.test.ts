import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { stringify } from 'yaml'
import { defaultSeed, loadSeedFile, type Seed, SeedError, validateSeed } from '../src/index.js'
import { octokit, sim, tempDir } from './fixtures/sim.js'

const tiny: Seed = {
  users: [{ login: 'alice', id: 1, name: 'Alice', tokens: [{ token: 'ghp_alice', scopes: ['repo'] }] }],
  repos: [
    {
      owner: 'alice',
      name: 'notes',
      private: true,
      files: { 'a.md': '# a\n' },
      branches: { dev: { 'b.md': 'b' } },
    },
  ],
}

t.test('default seed', async (t) => {
  t.same(
    defaultSeed.users.map((u) => u.login),
    ['octocat', 'hubot', 'monalisa', 'portico-bot'],
  )
  const specs = defaultSeed.repos?.find((r) => r.name === 'infra-specs')
  t.equal(
    Object.keys(specs?.files ?? {}).filter((p) => /^infra\/[a-z]+\/(dev|stg|prd)\/spec\.yml$/.test(p)).length,
    9,
  )
  t.equal(defaultSeed.oauth?.apps[0]?.client_id, 'Iv1.portico-dev')
  const app = defaultSeed.repos?.find((r) => r.name === 'sample-app')
  const files = app?.files ?? {}
  const count = (re: RegExp) => Object.values(files).reduce((n, src) => n + (src.match(re)?.length ?? 0), 0)
  t.equal(count(/^\s*app\.(get|post|put|patch|delete)\(/gm), 2, 'Express app routes')
  t.equal(count(/^\s*router\.(get|post|put|patch|delete)\(/gm), 4, 'Express router routes')
  t.equal(count(/^\s*fastify\.(get|post|put|patch|delete)\b/gm), 2, 'Fastify routes')
  t.equal(count(/^@app\.(get|post|put|patch|delete)\(/gm), 2, 'FastAPI routes')
  const components = Object.entries(files)
    .filter(([p]) => /\.(t|j)sx$/.test(p))
    .flatMap(([, src]) => src.match(/^(export (default )?function [A-Z]\w*|const [A-Z]\w* = \()/gm) ?? [])
  t.equal(components.length, 3, 'React components: Button, UserCard, Dashboard')
})

t.test('seed files and validation', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'seed.yaml'), stringify(tiny))
  await writeFile(join(dir, 'seed.json'), JSON.stringify(tiny))
  t.same(loadSeedFile(join(dir, 'seed.yaml')), tiny)
  t.same(loadSeedFile(join(dir, 'seed.json')), tiny)
  t.throws(() => loadSeedFile(join(dir, 'missing.yaml')), SeedError)
  t.throws(
    () =>
      validateSeed({
        users: [{ login: 'x' }],
        repos: [{ owner: 'nobody', name: 'r', private: 'no', files: {} }],
      }),
    {
      name: 'SeedError',
      message:
        /users\[0\]\.id must be an integer[\s\S]*repos\[0\]\.owner must name a seeded user or org[\s\S]*repos\[0\]\.private must be a boolean/,
    },
  )

  const s = await sim(t, { seed: join(dir, 'seed.yaml'), dataDir: join(dir, 'data') })
  const gh = octokit(s, 'ghp_alice')
  t.equal((await gh.rest.repos.get({ owner: 'alice', repo: 'notes' })).data.private, true)
  t.equal((await gh.rest.repos.listBranches({ owner: 'alice', repo: 'notes' })).data.length, 2)
  t.equal(s.seed.users[0]?.login, 'alice')
})
