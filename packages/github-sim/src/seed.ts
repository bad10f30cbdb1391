import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { githubAppProblems } from './github-apps.seed.js'
import type { Seed } from './types.js'

/** Thrown when a seed file or object does not have the documented shape. */
export class SeedError extends Error {
  override name = 'SeedError'
}

/** Reads a `.json`, `.yaml` or `.yml` seed file and validates it. */
export function loadSeedFile(path: string): Seed {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new SeedError(`cannot read seed file ${path}: ${(err as Error).message}`)
  }
  let data: unknown
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new SeedError(`cannot parse seed file ${path}: ${(err as Error).message}`)
  }
  return validateSeed(data, path)
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Checks `data` against the seed shape and returns it typed; throws SeedError naming every problem. */
export function validateSeed(data: unknown, source = 'seed'): Seed {
  const problems: string[] = []
  const need = (cond: boolean, msg: string) => {
    if (!cond) problems.push(msg)
  }
  const str = (v: unknown) => typeof v === 'string' && v.length > 0
  if (!isObj(data)) throw new SeedError(`${source}: seed must be an object with users/orgs/repos/oauth`)
  const users = data.users
  need(Array.isArray(users), 'users must be an array')
  const logins = new Set<string>()
  const tokens = new Set<string>()
  for (const [i, u] of (Array.isArray(users) ? users : []).entries()) {
    const at = `users[${i}]`
    if (!isObj(u)) {
      problems.push(`${at} must be an object`)
      continue
    }
    need(str(u.login), `${at}.login must be a non-empty string`)
    need(Number.isInteger(u.id), `${at}.id must be an integer`)
    need(typeof u.name === 'string', `${at}.name must be a string`)
    if (str(u.login)) {
      need(!logins.has((u.login as string).toLowerCase()), `${at}.login "${u.login}" is duplicated`)
      logins.add((u.login as string).toLowerCase())
    }
    for (const [j, t] of (Array.isArray(u.tokens) ? u.tokens : []).entries()) {
      const tat = `${at}.tokens[${j}]`
      if (!isObj(t)) {
        problems.push(`${tat} must be an object`)
        continue
      }
      need(str(t.token), `${tat}.token must be a non-empty string`)
      need(
        Array.isArray(t.scopes) && t.scopes.every((s) => typeof s === 'string'),
        `${tat}.scopes must be a list of strings`,
      )
      need(
        t.expires_at === undefined || !Number.isNaN(Date.parse(String(t.expires_at))),
        `${tat}.expires_at must be an ISO date`,
      )
      if (str(t.token)) {
        need(!tokens.has(t.token as string), `${tat}.token is duplicated`)
        tokens.add(t.token as string)
      }
    }
    need(u.tokens === undefined || Array.isArray(u.tokens), `${at}.tokens must be an array`)
  }
  const orgLogins = new Set<string>()
  need(data.orgs === undefined || Array.isArray(data.orgs), 'orgs must be an array')
  for (const [i, o] of (Array.isArray(data.orgs) ? data.orgs : []).entries()) {
    const at = `orgs[${i}]`
    if (!isObj(o)) {
      problems.push(`${at} must be an object`)
      continue
    }
    need(str(o.login), `${at}.login must be a non-empty string`)
    need(Number.isInteger(o.id), `${at}.id must be an integer`)
    if (str(o.login)) {
      need(!logins.has((o.login as string).toLowerCase()), `${at}.login "${o.login}" clashes with a user`)
      orgLogins.add((o.login as string).toLowerCase())
    }
    for (const [j, m] of (Array.isArray(o.members) ? o.members : []).entries()) {
      const mat = `${at}.members[${j}]`
      if (!isObj(m)) {
        problems.push(`${mat} must be an object`)
        continue
      }
      need(str(m.login) && logins.has(String(m.login).toLowerCase()), `${mat}.login must name a seeded user`)
      need(m.role === 'member' || m.role === 'admin', `${mat}.role must be member or admin`)
      need(m.state === 'active' || m.state === 'pending', `${mat}.state must be active or pending`)
    }
  }
  need(data.repos === undefined || Array.isArray(data.repos), 'repos must be an array')
  const repoNames = new Set<string>()
  for (const [i, r] of (Array.isArray(data.repos) ? data.repos : []).entries()) {
    const at = `repos[${i}]`
    if (!isObj(r)) {
      problems.push(`${at} must be an object`)
      continue
    }
    const owner = String(r.owner ?? '').toLowerCase()
    need(logins.has(owner) || orgLogins.has(owner), `${at}.owner must name a seeded user or org`)
    need(str(r.name) && /^[A-Za-z0-9._-]+$/.test(String(r.name)), `${at}.name must match [A-Za-z0-9._-]+`)
    need(!String(r.name).endsWith('.git'), `${at}.name must not end in .git`)
    need(typeof r.private === 'boolean', `${at}.private must be a boolean`)
    need(r.default_branch === undefined || str(r.default_branch), `${at}.default_branch must be a string`)
    need(
      isObj(r.files) && Object.values(r.files).every((c) => typeof c === 'string'),
      `${at}.files must map paths to string contents`,
    )
    need(r.empty === undefined || typeof r.empty === 'boolean', `${at}.empty must be a boolean`)
    if (isObj(r.files) && r.empty !== true)
      need(Object.keys(r.files).length > 0, `${at}.files must contain at least one file (or set empty: true)`)
    const full = `${owner}/${String(r.name).toLowerCase()}`
    need(!repoNames.has(full), `${at} ${full} is duplicated`)
    repoNames.add(full)
    for (const [j, c] of (Array.isArray(r.collaborators) ? r.collaborators : []).entries()) {
      const cat = `${at}.collaborators[${j}]`
      need(isObj(c) && logins.has(String(c.login).toLowerCase()), `${cat}.login must name a seeded user`)
      need(
        isObj(c) && ['read', 'write', 'admin'].includes(String(c.permission)),
        `${cat}.permission must be read|write|admin`,
      )
    }
  }
  if (data.oauth !== undefined) {
    const oauth = data.oauth
    if (!isObj(oauth) || !Array.isArray(oauth.apps)) problems.push('oauth.apps must be an array')
    else {
      for (const [i, a] of oauth.apps.entries()) {
        const at = `oauth.apps[${i}]`
        need(isObj(a) && str(a.client_id), `${at}.client_id must be a non-empty string`)
        need(isObj(a) && str(a.client_secret), `${at}.client_secret must be a non-empty string`)
        need(isObj(a) && URL.canParse(String(a.callback_url)), `${at}.callback_url must be an absolute URL`)
      }
      need(
        oauth.defaultLogin === undefined || logins.has(String(oauth.defaultLogin).toLowerCase()),
        'oauth.defaultLogin must name a seeded user',
      )
    }
  }
  problems.push(...githubAppProblems(data, new Set([...logins, ...orgLogins]), repoNames))
  if (problems.length) throw new SeedError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`)
  return data as unknown as Seed
}

/** The bundled seed (`seeds/default.yaml`): see the package README for its contents. */
export const defaultSeed: Seed = loadSeedFile(new URL('../seeds/default.yaml', import.meta.url).pathname)
