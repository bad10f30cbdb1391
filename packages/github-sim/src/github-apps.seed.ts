import { createPrivateKey, createPublicKey } from 'node:crypto'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown) => typeof v === 'string' && v.length > 0
const LEVELS = new Set(['read', 'write', 'admin'])

/**
 * Problems with the seed's `github_apps` and repositories' `apply_on_merge` (see SeedGitHubApp).
 * `accounts` are lower-case user and org logins; `repos` lower-case `owner/name`.
 */
export function githubAppProblems(data: Obj, accounts: Set<string>, repos: Set<string>): string[] {
  const problems: string[] = []
  const need = (cond: boolean, msg: string) => {
    if (!cond) problems.push(msg)
  }
  const url = (v: unknown) => typeof v === 'string' && URL.canParse(v)
  need(data.github_apps === undefined || Array.isArray(data.github_apps), 'github_apps must be an array')
  const ids = new Set<number>()
  const installationIds = new Set<number>()
  const slugs = new Set<string>()
  for (const [i, a] of (Array.isArray(data.github_apps) ? data.github_apps : []).entries()) {
    const at = `github_apps[${i}]`
    if (!isObj(a)) {
      problems.push(`${at} must be an object`)
      continue
    }
    need(Number.isInteger(a.id) && !ids.has(a.id as number), `${at}.id must be a unique integer`)
    ids.add(a.id as number)
    need(str(a.slug) && /^[a-z0-9-]+$/.test(String(a.slug)), `${at}.slug must match [a-z0-9-]+`)
    need(!slugs.has(String(a.slug)), `${at}.slug is duplicated`)
    slugs.add(String(a.slug))
    need(typeof a.name === 'string', `${at}.name must be a string`)
    need(accounts.has(String(a.owner ?? '').toLowerCase()), `${at}.owner must name a seeded user or org`)
    need(
      str(a.client_id) && str(a.client_secret),
      `${at}.client_id and client_secret must be non-empty strings`,
    )
    need(
      isObj(a.permissions) && Object.values(a.permissions).every((v) => LEVELS.has(String(v))),
      `${at}.permissions must map permission names to read|write|admin`,
    )
    for (const [key, parse] of [
      ['private_key', (v: string) => createPrivateKey(v)],
      ['public_key', (v: string) => createPublicKey(v)],
    ] as const) {
      if (a[key] === undefined) continue
      let ok = typeof a[key] === 'string'
      try {
        if (ok) parse(a[key] as string)
      } catch {
        ok = false
      }
      need(ok, `${at}.${key} must be a PEM key`)
    }
    need(a.setup_url === undefined || url(a.setup_url), `${at}.setup_url must be an absolute URL`)
    need(a.callback_url === undefined || url(a.callback_url), `${at}.callback_url must be an absolute URL`)
    need(
      a.events === undefined || (Array.isArray(a.events) && a.events.every(str)),
      `${at}.events must be a list of event names`,
    )
    need(
      a.webhook === undefined || (isObj(a.webhook) && url(a.webhook.url)),
      `${at}.webhook.url must be an absolute URL`,
    )
    for (const [j, inst] of (Array.isArray(a.installations) ? a.installations : []).entries()) {
      const iat = `${at}.installations[${j}]`
      if (!isObj(inst)) {
        problems.push(`${iat} must be an object`)
        continue
      }
      need(
        Number.isInteger(inst.id) && !installationIds.has(inst.id as number),
        `${iat}.id must be a unique integer`,
      )
      installationIds.add(inst.id as number)
      const account = String(inst.account ?? '').toLowerCase()
      need(accounts.has(account), `${iat}.account must name a seeded user or org`)
      need(
        inst.repository_selection === 'all' || inst.repository_selection === 'selected',
        `${iat}.repository_selection must be all or selected`,
      )
      for (const name of Array.isArray(inst.repositories) ? inst.repositories : [])
        need(
          repos.has(`${account}/${String(name).toLowerCase()}`),
          `${iat}.repositories: ${name} is not a seeded repository of ${account}`,
        )
      if (isObj(inst.permissions) && isObj(a.permissions)) {
        const appPerms = a.permissions
        const rank = (v: unknown) => ['read', 'write', 'admin'].indexOf(String(v))
        need(
          Object.entries(inst.permissions).every(([k, v]) => rank(v) >= 0 && rank(v) <= rank(appPerms[k])),
          `${iat}.permissions must not be wider than the App's`,
        )
      }
    }
  }
  for (const [i, r] of (Array.isArray(data.repos) ? data.repos : []).entries()) {
    if (!isObj(r) || r.apply_on_merge === undefined) continue
    const a = r.apply_on_merge
    need(
      isObj(a) && (a.conclusion === 'success' || a.conclusion === 'failure'),
      `repos[${i}].apply_on_merge.conclusion must be success or failure`,
    )
    need(
      !isObj(a) || a.app === undefined || slugs.has(String(a.app)),
      `repos[${i}].apply_on_merge.app must name a seeded GitHub App`,
    )
  }
  return problems
}
