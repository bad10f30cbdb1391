/**
 * Writes `schemas/api.github.com.trimmed.json`: the response schemas of the routes github-sim
 * implements, plus every component schema they reach, taken from GitHub's OpenAPI description in
 * `@octokit/openapi` (385 MB unpacked, so it is never a dependency: this script packs it into a
 * temporary directory and deletes it afterwards).
 *
 *   npx tsx packages/github-sim/scripts/trim-openapi.ts [--version 23.0.1] [--from path/to/api.github.com.json]
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'

const run = promisify(execFile)

/** Every REST route the simulator implements with a JSON body, and the success statuses to check. */
export const ROUTES: [method: string, path: string, statuses: string[]][] = [
  ['get', '/user', ['200']],
  ['get', '/users/{username}', ['200']],
  ['get', '/rate_limit', ['200']],
  ['get', '/user/memberships/orgs/{org}', ['200']],
  ['get', '/orgs/{org}/memberships/{username}', ['200']],
  ['get', '/user/orgs', ['200']],
  ['get', '/orgs/{org}', ['200']],
  ['get', '/user/repos', ['200']],
  ['get', '/orgs/{org}/repos', ['200']],
  ['get', '/repos/{owner}/{repo}', ['200']],
  ['get', '/repos/{owner}/{repo}/branches', ['200']],
  ['get', '/repos/{owner}/{repo}/branches/{branch}', ['200']],
  ['get', '/repos/{owner}/{repo}/actions/workflows', ['200']],
  ['get', '/repos/{owner}/{repo}/contents/{path}', ['200']],
  ['put', '/repos/{owner}/{repo}/contents/{path}', ['200', '201']],
  ['get', '/repos/{owner}/{repo}/git/ref/{ref}', ['200']],
  ['get', '/repos/{owner}/{repo}/git/matching-refs/{ref}', ['200']],
  ['post', '/repos/{owner}/{repo}/git/refs', ['201']],
  ['patch', '/repos/{owner}/{repo}/git/refs/{ref}', ['200']],
  ['get', '/repos/{owner}/{repo}/git/trees/{tree_sha}', ['200']],
  ['post', '/repos/{owner}/{repo}/git/trees', ['201']],
  ['get', '/repos/{owner}/{repo}/git/blobs/{file_sha}', ['200']],
  ['post', '/repos/{owner}/{repo}/git/blobs', ['201']],
  ['get', '/repos/{owner}/{repo}/git/commits/{commit_sha}', ['200']],
  ['post', '/repos/{owner}/{repo}/git/commits', ['201']],
  ['get', '/repos/{owner}/{repo}/pulls', ['200']],
  ['post', '/repos/{owner}/{repo}/pulls', ['201']],
  ['get', '/repos/{owner}/{repo}/pulls/{pull_number}', ['200']],
  ['patch', '/repos/{owner}/{repo}/pulls/{pull_number}', ['200']],
  ['put', '/repos/{owner}/{repo}/pulls/{pull_number}/merge', ['200']],
  // GitHub Apps (issue 13).
  ['get', '/app', ['200']],
  // Not GET /app/installations: its description types `account` as allOf(simple-user, enterprise),
  // which no real account satisfies (GET /app/installations/{id} has the correct anyOf).
  ['get', '/app/installations/{installation_id}', ['200']],
  ['post', '/app/installations/{installation_id}/access_tokens', ['201']],
  ['get', '/repos/{owner}/{repo}/installation', ['200']],
  ['get', '/installation/repositories', ['200']],
  ['get', '/user/installations', ['200']],
  ['get', '/user/installations/{installation_id}/repositories', ['200']],
  // Webhooks, statuses and check runs (issue 14).
  ['get', '/repos/{owner}/{repo}/hooks', ['200']],
  ['post', '/repos/{owner}/{repo}/hooks', ['201']],
  ['get', '/repos/{owner}/{repo}/hooks/{hook_id}', ['200']],
  ['patch', '/repos/{owner}/{repo}/hooks/{hook_id}', ['200']],
  ['get', '/repos/{owner}/{repo}/hooks/{hook_id}/deliveries', ['200']],
  ['get', '/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}', ['200']],
  ['get', '/app/hook/deliveries', ['200']],
  ['post', '/repos/{owner}/{repo}/statuses/{sha}', ['201']],
  ['get', '/repos/{owner}/{repo}/commits/{ref}/status', ['200']],
  ['get', '/repos/{owner}/{repo}/commits/{ref}/statuses', ['200']],
  ['post', '/repos/{owner}/{repo}/check-runs', ['201']],
  ['patch', '/repos/{owner}/{repo}/check-runs/{check_run_id}', ['200']],
  ['get', '/repos/{owner}/{repo}/check-runs/{check_run_id}', ['200']],
  ['get', '/repos/{owner}/{repo}/commits/{ref}/check-runs', ['200']],
]

type Json = Record<string, unknown>

function collectRefs(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectRefs(item, out)
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.add(v)
      else collectRefs(v, out)
    }
  }
}

/** Drops documentation-only keys to keep the committed file small. */
function strip(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strip)
  if (!node || typeof node !== 'object') return node
  const out: Json = {}
  for (const [k, v] of Object.entries(node)) {
    if (k === 'description' || k === 'example' || k === 'examples' || k === 'title' || k === 'x-github')
      continue
    out[k] =
      k === 'properties'
        ? Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, strip(s)]))
        : strip(v)
  }
  return out
}

async function fetchDescription(version: string): Promise<{ doc: Json; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'octokit-openapi-'))
  await run('npm', ['pack', `@octokit/openapi@${version}`, '--silent'], { cwd: dir, maxBuffer: 1 << 24 })
  const tgz = (await readdir(dir)).find((f) => f.endsWith('.tgz'))
  if (!tgz) throw new Error('npm pack produced no tarball')
  await run('tar', ['xzf', tgz, 'package/generated/api.github.com.json'], { cwd: dir })
  const doc = JSON.parse(await readFile(join(dir, 'package/generated/api.github.com.json'), 'utf8')) as Json
  return { doc, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

async function main(): Promise<void> {
  const require = createRequire(import.meta.url)
  const typesPkg = require('@octokit/openapi-types/package.json') as {
    octokit?: { 'openapi-version'?: string }
  }
  const { values } = parseArgs({
    options: { version: { type: 'string' }, from: { type: 'string' } },
  })
  const version = values.version ?? typesPkg.octokit?.['openapi-version'] ?? '23.0.1'
  const { doc, cleanup } = values.from
    ? { doc: JSON.parse(await readFile(values.from, 'utf8')) as Json, cleanup: async () => {} }
    : await fetchDescription(version)
  try {
    const paths = doc.paths as Record<string, Record<string, Json>>
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas
    const routes: Record<string, Record<string, unknown>> = {}
    const refs = new Set<string>()
    for (const [method, path, statuses] of ROUTES) {
      const op = paths[path]?.[method]
      if (!op) throw new Error(`${method.toUpperCase()} ${path} is not in the description`)
      const responses = op.responses as Record<string, { content?: Record<string, { schema?: unknown }> }>
      const byStatus: Record<string, unknown> = {}
      for (const status of statuses) {
        const schema = responses[status]?.content?.['application/json']?.schema
        if (!schema) throw new Error(`${method.toUpperCase()} ${path} has no JSON ${status} response`)
        byStatus[status] = strip(schema)
        collectRefs(schema, refs)
      }
      routes[`${method.toUpperCase()} ${path}`] = byStatus
    }
    const kept: Record<string, unknown> = {}
    const queue = [...refs]
    while (queue.length) {
      const ref = queue.pop()!
      const name = ref.replace('#/components/schemas/', '')
      if (kept[name]) continue
      const schema = schemas[name]
      if (!schema) throw new Error(`unresolvable ${ref}`)
      kept[name] = strip(schema)
      const more = new Set<string>()
      collectRefs(schema, more)
      queue.push(...more)
    }
    const out = {
      source: {
        package: '@octokit/openapi',
        version,
        file: 'generated/api.github.com.json',
        openapi: doc.openapi,
      },
      generatedBy: 'packages/github-sim/scripts/trim-openapi.ts',
      routes,
      components: {
        schemas: Object.fromEntries(Object.entries(kept).sort(([a], [b]) => a.localeCompare(b))),
      },
    }
    const target = new URL('../schemas/api.github.com.trimmed.json', import.meta.url).pathname
    await writeFile(target, `${JSON.stringify(out, null, 1)}\n`)
    process.stdout.write(
      `wrote ${target}: ${Object.keys(routes).length} routes, ${Object.keys(kept).length} schemas\n`,
    )
  } finally {
    await cleanup()
  }
}

await main()
