import type { AppRecord, InstallationRecord } from './github-apps.js'
import { SEED_TIME, type World } from './state.js'
import { nodeId, type Schemas, simpleUser, type Urls } from './views.js'

/** `simple-user` of a user or organization login (a placeholder for unknown logins). */
export function accountJson(world: World, login: string, urls: Urls): Schemas['simple-user'] {
  const rec = world.user(login) ?? world.org(login)
  if (rec) return simpleUser(rec, urls)
  return simpleUser(
    { login, id: 0, name: login, email: null, avatarUrl: '', type: 'User', createdAt: SEED_TIME },
    urls,
  )
}

/** GitHub's `integration` (GET /app, and `installation.app` style references). */
export function integration(world: World, app: AppRecord, urls: Urls, installationsCount: number) {
  return {
    id: app.id,
    slug: app.slug,
    node_id: nodeId('Integration', app.id),
    client_id: app.clientId,
    owner: accountJson(world, app.owner, urls),
    name: app.name,
    description: null,
    external_url: app.setupUrl ? new URL(app.setupUrl).origin : `${urls.web}/apps/${app.slug}`,
    html_url: `${urls.web}/apps/${app.slug}`,
    created_at: app.createdAt,
    updated_at: app.createdAt,
    permissions: app.permissions,
    events: app.events,
    installations_count: installationsCount,
  }
}

/** GitHub's `installation` object. */
export function installationJson(
  world: World,
  app: AppRecord,
  inst: InstallationRecord,
  urls: Urls,
): Schemas['installation'] {
  const account = accountJson(world, inst.account, urls)
  const isOrg = Boolean(world.org(inst.account))
  return {
    id: inst.id,
    account,
    repository_selection: inst.repositorySelection,
    access_tokens_url: `${urls.api}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${urls.api}/installation/repositories`,
    html_url: isOrg
      ? `${urls.web}/organizations/${inst.account}/settings/installations/${inst.id}`
      : `${urls.web}/settings/installations/${inst.id}`,
    app_id: app.id,
    app_slug: app.slug,
    client_id: app.clientId,
    target_id: Number(account.id),
    target_type: isOrg ? 'Organization' : 'User',
    permissions: inst.permissions as Schemas['app-permissions'],
    events: inst.events,
    created_at: inst.createdAt,
    updated_at: inst.updatedAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: null,
    suspended_at: inst.suspendedAt,
  }
}
