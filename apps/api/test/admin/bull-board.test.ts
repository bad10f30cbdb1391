import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, signIn, writeHeaders } from '../helper.js'

t.test('Bull Board at /admin/queues', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  // octocat's numeric GitHub id (seed): operators are known by id, not by renamable login.
  const app = await build(t, { ...env, OPERATOR_GITHUB_IDS: '1, 583231' })
  const operator = (await signIn(app, sim, 'octocat')).cookie
  const user = (await signIn(app, sim, 'hubot')).cookie

  await t.test('anonymous page load → sign in first, then back here', async (t) => {
    // What browsers send when navigating to a page.
    const navigation = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
    for (const [method, url, accept] of [
      ['GET', '/admin/queues', navigation],
      ['HEAD', '/admin/queues', navigation],
      ['GET', '/admin/queues/', 'text/html'],
      ['GET', '/admin/queues/queue/clone?status=failed', navigation],
      ['GET', '/admin/queues', 'application/json;q=0.5, text/html'],
    ] as const) {
      const res = await app.inject({ method, url, headers: { accept } })
      t.equal(res.statusCode, 302, `${method} ${url} (${accept})`)
      t.equal(res.headers.location, '/auth/login?returnTo=/admin/queues')
    }
    const { location } = await signIn(app, sim, 'octocat', { returnTo: '/admin/queues' })
    t.equal(location, '/admin/queues')
  })

  await t.test('anonymous API call → 401 NOT_AUTHENTICATED in the API error body', async (t) => {
    // A new user's trial: PUT or Accept: application/json under /admin/queues/api/ got a 302 to
    // the sign-in page, which a script follows to HTML.
    for (const [method, url, accept] of [
      ['GET', '/admin/queues/api/queues', undefined],
      ['GET', '/admin/queues/api/queues', 'text/html'],
      // Encoded, as the router decodes it (a review): still the API.
      ['GET', '/admin/queues/%61pi/queues', 'text/html'],
      ['GET', '/admin/queues/api/queues?activeQueue=clone', 'application/json, text/plain, */*'],
      ['PUT', '/admin/queues/api/queues/clone/retry/failed', undefined],
      ['PUT', '/admin/queues/api/queues/clone/retry/failed', 'application/json'],
      ['PUT', '/admin/queues/api/queues/clone/clean/failed', undefined],
      ['POST', '/admin/queues/api/queues/clone/add', 'text/html'],
      ['GET', '/admin/queues', 'application/json'],
      ['GET', '/admin/queues', 'text/html;q=0.5, application/json'],
      ['GET', '/admin/queues', '*/*'],
      ['GET', '/admin/queues', undefined],
    ] as const) {
      const res = await app.inject({ method, url, headers: accept ? { accept } : {} })
      const what = `${method} ${url} (${accept ?? 'no Accept'})`
      t.equal(res.statusCode, 401, what)
      t.equal(res.headers.location, undefined, `${what}: no redirect`)
      t.same(
        res.json(),
        {
          statusCode: 401,
          code: 'NOT_AUTHENTICATED',
          error: 'Sign in with GitHub to continue.',
          message: 'Sign in with GitHub to continue.',
        },
        what,
      )
    }
  })

  await t.test('signed in, not an operator → 403', async (t) => {
    for (const url of ['/admin/queues', '/admin/queues/api/queues']) {
      const res = await app.inject({ url, headers: { cookie: user } })
      t.equal(res.statusCode, 403, url)
      t.equal(res.json().code, 'OPERATOR_REQUIRED')
    }
  })

  await t.test('operator → the board, with the clone, deploy and maintenance queues', async (t) => {
    const page = await app.inject({ url: '/admin/queues', headers: { cookie: operator } })
    t.equal(page.statusCode, 200)
    t.match(page.headers['content-type'], /text\/html/)
    t.match(page.body, /Portico queues/)

    const connectionId = '3f0c1d6e-1111-4222-8333-444455556666'
    await app.enqueue('clone', { connectionId }, { jobId: `clone-${connectionId}`, delay: 60_000 })
    const api = await app.inject({
      url: '/admin/queues/api/queues?activeQueue=clone&status=delayed',
      headers: { cookie: operator },
    })
    t.equal(api.statusCode, 200)
    const queues = api.json().queues as { name: string; jobs: { data: unknown }[] }[]
    t.same(queues.map((q) => q.name).sort(), ['clone', 'deploy', 'maintenance', 'webhooks'])
    const clone = queues.find((q) => q.name === 'clone')
    t.same(
      clone?.jobs.map((j) => j.data),
      [{ connectionId }],
      'job data shows ids only',
    )
  })

  await t.test('an operator id does not follow the login; OPERATOR_LOGINS still works', async (t) => {
    const byId = await build(t, { ...env, OPERATOR_GITHUB_IDS: '480938' }) // hubot's id
    const octocat = (await signIn(byId, sim, 'octocat')).cookie
    const hubot = (await signIn(byId, sim, 'hubot')).cookie
    t.equal((await byId.inject({ url: '/admin/queues', headers: { cookie: octocat } })).statusCode, 403)
    t.equal((await byId.inject({ url: '/admin/queues', headers: { cookie: hubot } })).statusCode, 200)
    const legacy = await build(t, { ...env, OPERATOR_LOGINS: 'someone-else, OctoCat' })
    const legacyOp = (await signIn(legacy, sim, 'octocat')).cookie
    t.equal((await legacy.inject({ url: '/admin/queues', headers: { cookie: legacyOp } })).statusCode, 200)
  })

  await t.test('its API errors carry no stack, even in development', async (t) => {
    // NODE_ENV=development is `npm start`'s default; Bull Board's own handler added the stack then.
    const dev = await build(t, { ...env, OPERATOR_GITHUB_IDS: '583231', NODE_ENV: 'development' })
    const cookie = (await signIn(dev, sim, 'octocat')).cookie
    const res = await dev.inject({
      method: 'PUT',
      url: '/admin/queues/api/queues/clone/retry/failed',
      payload: '{"oops":',
      headers: { ...writeHeaders(dev, cookie), 'content-type': 'application/json' },
    })
    t.equal(res.statusCode, 400)
    t.same(res.json(), {
      error: { key: 'ERRORS.INTERNAL_SERVER_ERROR' },
      message: 'The request body is not valid JSON.',
    })
    t.notMatch(res.body, /\bat |\.ts:|node_modules/, 'no stack')
  })

  await t.test('the board is encapsulated: its hook does not guard other routes', async (t) => {
    t.equal((await app.inject({ url: '/health/live' })).statusCode, 200)
  })
})
