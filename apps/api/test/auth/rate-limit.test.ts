import { startTestSimulator, testConfig } from '@portico/testing'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import app from '../../src/app.js'
import { serverOptions } from '../../src/server-options.js'
import { build, createTenantWithProject, signIn, writeHeaders } from '../helper.js'

const { sim, env } = await startTestSimulator(t)

const expect429 = (t: Test, res: LightMyRequestResponse) => {
  t.equal(res.statusCode, 429, res.body)
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After in seconds (${res.headers['retry-after']})`)
  const body = res.json()
  t.equal(body.statusCode, 429)
  t.equal(body.code, 'RATE_LIMITED')
  t.match(body.message, /^Too many requests\. Try again in \d+ seconds?\.$/)
  t.type(body.error, 'string')
}

t.test('every /auth/* route is limited per client, across every API process sharing Redis', async (t) => {
  const config = await testConfig(t, { ...env, RATE_LIMIT_AUTH_MAX: '3' })
  const one = Fastify({ ...serverOptions(config, false), pluginTimeout: 120_000 })
  await one.register(app, { config })
  const two = Fastify({ ...serverOptions(config, false), pluginTimeout: 120_000 })
  await two.register(app, { config })
  t.teardown(() => Promise.all([one.close(), two.close()]))

  t.equal((await one.inject({ url: '/auth/login' })).statusCode, 302)
  t.equal((await two.inject({ url: '/auth/login' })).statusCode, 302)
  t.equal((await one.inject({ url: '/auth/login' })).statusCode, 302)
  expect429(t, await two.inject({ url: '/auth/login' }))
  for (let i = 0; i < 3; i++) await two.inject({ url: '/auth/callback?state=x&code=y' })
  expect429(t, await one.inject({ url: '/auth/callback?state=x&code=y' }))
  for (let i = 0; i < 3; i++) await one.inject({ method: 'POST', url: '/auth/logout' })
  expect429(t, await two.inject({ method: 'POST', url: '/auth/logout' }))
  t.equal((await one.inject({ url: '/api/auth/user' })).statusCode, 401, 'other routes are not limited')
  const elsewhere = await one.inject({ url: '/auth/login', remoteAddress: '10.9.8.7' })
  t.equal(elsewhere.statusCode, 302, 'another client has its own budget')
})

t.test('connection POSTs and POST /api/pod are limited', async (t) => {
  const server = await build(t, { ...env, RATE_LIMIT_CONNECTIONS_MAX: '2', RATE_LIMIT_DEPLOYS_MAX: '2' })
  const { cookie } = await signIn(server, sim, 'octocat')
  const { project } = await createTenantWithProject(server, cookie)
  const connect = () =>
    server.inject({
      method: 'POST',
      url: `/api/v1/projects/${project.id}/github`,
      headers: writeHeaders(server, cookie),
      payload: {},
    })
  t.equal((await connect()).statusCode, 400)
  t.equal((await connect()).statusCode, 400)
  expect429(t, await connect())
  const read = await server.inject({ url: `/api/v1/projects/${project.id}/github`, headers: { cookie } })
  t.not(read.statusCode, 429, 'reads of the connection are not limited')
  // Every connection route that calls GitHub with what the caller sends is limited (each its own count).
  const github = `/api/v1/projects/${project.id}/github`
  const others = [
    () =>
      server.inject({
        method: 'PATCH',
        url: github,
        headers: writeHeaders(server, cookie),
        payload: { pat: 'x' },
      }),
    () =>
      server.inject({
        method: 'POST',
        url: `${github}/refresh`,
        headers: writeHeaders(server, cookie),
        payload: {},
      }),
    () => server.inject({ url: `${github}/installations`, headers: { cookie } }),
  ]
  for (const call of others) {
    t.not((await call()).statusCode, 429)
    t.not((await call()).statusCode, 429)
    expect429(t, await call())
  }

  const deploy = () =>
    server.inject({
      method: 'POST',
      url: '/api/pod',
      headers: writeHeaders(server, cookie),
      payload: { customer: 'alpha' },
    })
  t.not((await deploy()).statusCode, 429)
  t.not((await deploy()).statusCode, 429)
  expect429(t, await deploy())
})
