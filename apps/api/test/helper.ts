import type { Simulator } from '@portico/github-sim'
import { type Teardown, testConfig } from '@portico/testing'
import Fastify, { type FastifyInstance, type LightMyRequestResponse, type RouteOptions } from 'fastify'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'

/**
 * Builds the whole API against real Postgres and Redis with a per-file database and queue
 * prefix; `env` overrides configuration variables and `setup` runs before `ready` (to add
 * test-only routes). Closed at teardown.
 */
export async function build(
  t: Teardown,
  env: Record<string, string | undefined> = {},
  setup?: (app: FastifyInstance) => void | Promise<void>,
  routes?: RouteOptions[],
): Promise<FastifyInstance> {
  const config = await testConfig(t, env)
  // Loading every plugin's modules can take longer than avvio's 10 s on a loaded machine.
  const fastify = Fastify({ ...serverOptions(config, false), pluginTimeout: 120_000 })
  if (routes) fastify.addHook('onRoute', (route) => void routes.push(route))
  await fastify.register(app, { config })
  await setup?.(fastify)
  await fastify.ready()
  t.teardown(() => fastify.close())
  return fastify
}

/**
 * {@link build}, with Fastify's own route table: every route's options as registered, seen
 * through an onRoute hook added before the app registers any (including later onRoute changes).
 */
export async function buildWithRoutes(
  t: Teardown,
  env: Record<string, string | undefined> = {},
): Promise<{ server: FastifyInstance; routes: RouteOptions[] }> {
  const routes: RouteOptions[] = []
  const server = await build(t, env, undefined, routes)
  return { server, routes }
}

/** Cookie header value (`name=value; …`) from a response's Set-Cookie headers, merged into `jar`. */
export function mergeCookies(jar: string, res: LightMyRequestResponse): string {
  const cookies = new Map<string, string>()
  for (const part of jar.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  for (const c of res.cookies as { name: string; value: string; expires?: Date; maxAge?: number }[]) {
    const cleared =
      c.value === '' || c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now())
    if (cleared) cookies.delete(c.name)
    else cookies.set(c.name, c.value)
  }
  return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ')
}

/** Options of {@link signIn}. */
export interface SignInOptions {
  /** Passed to `/auth/login?returnTo=`. */
  returnTo?: string
  /** Cookies to start from (e.g. an existing session). */
  cookie?: string
}

/** Result of {@link signIn}. */
export interface SignInResult {
  /** Cookie header carrying the signed-in session. */
  cookie: string
  /** Where the callback redirected to. */
  location: string
}

/**
 * Signs `login` in through the REAL OAuth flow: `GET /auth/login` (injected), the simulator's
 * authorize page over HTTP (auto-approve, `&login=` picks the account), then the injected
 * `/auth/callback` with the cookies of the first step. Throws when a step does not answer as
 * a successful sign-in does.
 */
export async function signIn(
  app: FastifyInstance,
  sim: Pick<Simulator, 'url'>,
  login: string,
  opts: SignInOptions = {},
): Promise<SignInResult> {
  const query = opts.returnTo === undefined ? '' : `?returnTo=${encodeURIComponent(opts.returnTo)}`
  const start = await app.inject({
    method: 'GET',
    url: `/auth/login${query}`,
    headers: opts.cookie ? { cookie: opts.cookie } : {},
  })
  if (start.statusCode !== 302) throw new Error(`/auth/login answered ${start.statusCode}: ${start.body}`)
  let jar = mergeCookies(opts.cookie ?? '', start)
  const authorize = new URL(String(start.headers.location))
  if (!authorize.href.startsWith(sim.url)) throw new Error(`/auth/login redirected to ${authorize.href}`)
  authorize.searchParams.set('login', login)
  const approved = await fetch(authorize, { redirect: 'manual' })
  const back = approved.headers.get('location')
  if (approved.status !== 302 || !back) throw new Error(`authorize answered ${approved.status}`)
  const callback = new URL(back)
  const done = await app.inject({
    method: 'GET',
    url: `${callback.pathname}${callback.search}`,
    headers: { cookie: jar },
  })
  if (done.statusCode !== 302) throw new Error(`/auth/callback answered ${done.statusCode}: ${done.body}`)
  jar = mergeCookies(jar, done)
  const session = jar.split('; ').find((c) => c.startsWith('portico_session='))
  if (!session) throw new Error('the callback set no session cookie')
  return { cookie: session, location: String(done.headers.location) }
}

/** Headers for a cookie-authenticated write from the frontend's origin. */
export function writeHeaders(app: FastifyInstance, cookie: string): Record<string, string> {
  return { cookie, origin: new URL(app.config.PUBLIC_URL).origin }
}

async function expectJson<T>(res: LightMyRequestResponse, status: number, what: string): Promise<T> {
  if (res.statusCode !== status) throw new Error(`${what} answered ${res.statusCode}: ${res.body}`)
  return res.json() as T
}

/** A tenant as the API returns it. */
export interface TenantBody {
  id: string
  slug: string
  name: string
  role: string
}

/** A project as the API returns it. */
export interface ProjectBody {
  id: string
  tenant_id: string
  name: string
  slug: string
  role?: string
}

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid.toString(36)}-${(counter++).toString(36)}`

/** `POST /api/v1/tenants` as the cookie's user (who becomes owner). */
export async function createTenant(
  app: FastifyInstance,
  cookie: string,
  body: { slug?: string; name?: string } = {},
): Promise<TenantBody> {
  const slug = body.slug ?? unique('t')
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/tenants',
    headers: writeHeaders(app, cookie),
    payload: { slug, name: body.name ?? `Tenant ${slug}` },
  })
  return expectJson<TenantBody>(res, 201, 'POST /api/v1/tenants')
}

/** `POST /api/v1/tenants/{tenantId}/projects`. */
export async function createProject(
  app: FastifyInstance,
  cookie: string,
  tenantId: string,
  body: { name?: string; slug?: string } = {},
): Promise<ProjectBody> {
  const slug = body.slug ?? unique('p')
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/tenants/${tenantId}/projects`,
    headers: writeHeaders(app, cookie),
    payload: { name: body.name ?? `Project ${slug}`, slug },
  })
  return expectJson<ProjectBody>(res, 201, 'POST /api/v1/tenants/:tenantId/projects')
}

/** Creates a tenant and a project in it through the public routes; the cookie's user owns both. */
export async function createTenantWithProject(
  app: FastifyInstance,
  cookie: string,
  opts: { tenantSlug?: string; projectName?: string; projectSlug?: string } = {},
): Promise<{ tenant: TenantBody; project: ProjectBody }> {
  const tenant = await createTenant(app, cookie, { slug: opts.tenantSlug })
  const project = await createProject(app, cookie, tenant.id, {
    name: opts.projectName,
    slug: opts.projectSlug,
  })
  return { tenant, project }
}

/** `PUT /api/v1/tenants/{tenantId}/members/{login}` (the user must have signed in once). */
export async function addTenantMember(
  app: FastifyInstance,
  cookie: string,
  tenantId: string,
  login: string,
  role: 'owner' | 'admin' | 'member',
): Promise<void> {
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/tenants/${tenantId}/members/${encodeURIComponent(login)}`,
    headers: writeHeaders(app, cookie),
    payload: { role },
  })
  await expectJson(res, 200, 'PUT /api/v1/tenants/:tenantId/members/:login')
}

/** `PUT /api/v1/projects/{projectId}/members/{login}` (the user must have signed in once). */
export async function addProjectMember(
  app: FastifyInstance,
  cookie: string,
  projectId: string,
  login: string,
  role: string,
): Promise<void> {
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/projects/${projectId}/members/${encodeURIComponent(login)}`,
    headers: writeHeaders(app, cookie),
    payload: { role },
  })
  await expectJson(res, 200, 'PUT /api/v1/projects/:projectId/members/:login')
}
