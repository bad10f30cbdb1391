import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { analyzeRepository, DEFAULT_ANALYSIS_LIMITS } from '../src/analysis/analyze.js'
import { detectComponent, detectRoutes, joinPaths } from '../src/analysis/detectors.js'
import {
  POLYGLOT_COMPONENTS,
  POLYGLOT_ENDPOINTS,
  POLYGLOT_FILES,
  POLYGLOT_ROUTES,
} from './fixtures/polyglot-repo.js'

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true })
    await writeFile(path.join(root, rel), content)
  }
}

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'portico-analysis-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('finds every framework’s routes and the React components of the polyglot fixture', async (t) => {
  const root = await tempDir(t)
  await writeTree(root, POLYGLOT_FILES)
  const result = await analyzeRepository(root)
  t.equal(result.routesCount, POLYGLOT_ROUTES)
  t.equal(result.endpointsCount, POLYGLOT_ENDPOINTS)
  t.equal(result.summary.endpoints, POLYGLOT_ENDPOINTS)
  t.equal(result.componentsCount, POLYGLOT_COMPONENTS.length)
  t.same(result.summary.components.map((c) => c.name).sort(), POLYGLOT_COMPONENTS)
  t.same(result.summary.frameworks, [
    'Express',
    'FastAPI',
    'Fastify',
    'Flask',
    'NestJS',
    'React',
    'Spring Boot',
  ])
  const routes = result.summary.routes.map((r) => `${r.method} ${r.path} ${r.file}`)
  for (const expected of [
    'GET /users nest/src/users.controller.ts',
    'DELETE /users/:id nest/src/users.controller.ts',
    'GET /api/orders spring/src/main/java/com/acme/OrderController.java',
    'GET /api/orders/{id} spring/src/main/java/com/acme/OrderController.java',
    'POST /api/orders spring/src/main/java/com/acme/OrderController.java',
    'DELETE /api/orders/{id} spring/src/main/java/com/acme/OrderController.java',
    'GET / flask/app.py',
    'POST /items flask/app.py',
    'GET /admin/stats flask/app.py',
    'PUT /v1/things/{thing_id} fastapi/main.py',
    'PATCH /profile express/app.js',
    'HEAD /status fastify/plugin.ts',
  ]) {
    t.ok(routes.includes(expected), expected)
  }
  t.notOk(
    routes.some((r) => r.includes('/not-a-route')),
    'HTTP client calls are not routes',
  )
  t.notOk(
    routes.some((r) => r.includes('/static')),
    'app.use mounts are not routes',
  )
  t.equal(result.summary.truncated, false)
})

t.test('skips .git, dependency, vendored and build folders, and never follows symlinks', async (t) => {
  const root = await tempDir(t)
  const outside = await tempDir(t)
  const express = "const express = require('express')\nconst app = express()\napp.get('/leak', h)\n"
  await writeTree(outside, { 'server.js': express, 'Secret.tsx': 'export default function Secret() {}\n' })
  await writeTree(root, {
    'src/server.js': "const express = require('express')\nconst app = express()\napp.get('/ok', h)\n",
    'node_modules/pkg/index.js': express,
    'vendor/lib/index.js': express,
    'dist/server.js': express,
    'build/server.js': express,
    '.git/hooks/server.js': express,
    '.cache/server.js': express,
  })
  await symlink(outside, path.join(root, 'linked-dir'))
  await symlink(path.join(outside, 'server.js'), path.join(root, 'src/linked.js'))
  await symlink(path.join(outside, 'Secret.tsx'), path.join(root, 'src/Secret.tsx'))
  const result = await analyzeRepository(root)
  t.same(
    result.summary.routes.map((r) => `${r.path} ${r.file}`),
    ['/ok src/server.js'],
  )
  t.equal(result.componentsCount, 0, 'a symlinked component file is not read')
})

t.test('bounds the files and bytes it reads', async (t) => {
  const root = await tempDir(t)
  const files: Record<string, string> = {}
  for (let i = 0; i < 30; i++)
    files[`r${String(i).padStart(2, '0')}.js`] = "import express from 'express'\napp.get('/x', h)\n"
  files['huge.js'] = `import express from 'express'\napp.get('/huge', h)\n${'// padding\n'.repeat(2000)}`
  await writeTree(root, files)
  const limited = await analyzeRepository(root, {
    ...DEFAULT_ANALYSIS_LIMITS,
    maxFiles: 10,
    maxFileBytes: 1024,
  })
  t.equal(limited.routesCount, 10)
  t.equal(limited.summary.truncated, true)
  t.equal(limited.summary.files_scanned, 10)
  const noHuge = await analyzeRepository(root, { ...DEFAULT_ANALYSIS_LIMITS, maxFileBytes: 1024 })
  t.notOk(
    noHuge.summary.routes.some((r) => r.path === '/huge'),
    'files over the size bound are skipped',
  )
  const listed = await analyzeRepository(root, { ...DEFAULT_ANALYSIS_LIMITS, maxListed: 5 })
  t.equal(listed.summary.routes.length, 5, 'the stored list is capped')
  t.equal(listed.routesCount, 31, 'the count stays exact')
})

t.test('an unknown framework or an empty repository is not a failure', async (t) => {
  const root = await tempDir(t)
  await writeTree(root, { 'main.go': 'package main\n', 'README.md': '# hi\n' })
  const result = await analyzeRepository(root)
  t.same(result.summary.frameworks, [])
  t.equal(result.routesCount, 0)
  t.equal(result.endpointsCount, 0)
})

t.test('detector details', async (t) => {
  t.equal(joinPaths('/api/', '/v1/', 'x/'), '/api/v1/x')
  t.equal(joinPaths(undefined, ''), '/')
  t.same(
    detectRoutes(
      'a.ts',
      "import { Router } from 'express'\nconst usersRouter = Router()\nusersRouter.post('/u', h)\n",
    ),
    [{ framework: 'Express', method: 'POST', path: '/u' }],
  )
  t.same(detectRoutes('a.py', '@app.get("/x")\ndef x(): pass\n'), [], 'python routes need a framework import')
  t.same(detectRoutes('A.java', '@GetMapping("/x")\nclass A {}'), [], 'Spring routes need a controller')
  t.equal(detectComponent('src/Button.stories.tsx', ''), undefined)
  t.same(detectComponent('src/App.jsx', ''), { framework: 'React', name: 'App' })
  t.equal(detectComponent('src/util.ts', 'export default function Util() {}'), undefined)
})

t.test('the analysis thread starts in a process launched as `npm start` launches the worker', async (t) => {
  // tsx as the loader and the plain-JS exit-with-parent preload: on Node 20 a worker thread does
  // not inherit tsx's hooks, which once left every connection `cloned` with "Unknown file extension".
  const root = await tempDir(t)
  await writeTree(root, POLYGLOT_FILES)
  const script = path.join(root, '..', `run-thread-${path.basename(root)}.mts`)
  const moduleUrl = new URL('../src/analysis/analyze-in-thread.ts', import.meta.url).href
  await writeFile(
    script,
    `import { analyzeInThread } from ${JSON.stringify(moduleUrl)}\n` +
      `const r = await analyzeInThread(${JSON.stringify(root)}, { timeoutMs: 60000 })\n` +
      'console.log(JSON.stringify({ routes: r.routesCount }))\n',
  )
  t.teardown(() => rm(script, { force: true }))
  const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
  const { execFile } = await import('node:child_process')
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@portico/source',
        '--import',
        new URL('../../../scripts/exit-with-parent.mjs', import.meta.url).href,
        script,
      ],
      { cwd: repoRoot, timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    ),
  )
  t.same(JSON.parse(out.trim().split('\n').at(-1) ?? '{}'), { routes: POLYGLOT_ROUTES })
})
