import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build } from '../helper.js'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test-artifacts')

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`

t.test('an operator signs in with a real browser and sees the three queues', { skip }, async (t) => {
  const { chromium } = await import('playwright-core')
  const { env } = await startTestSimulator(t)
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const app = await build(t, { ...env, PUBLIC_URL: base, OPERATOR_LOGINS: 'octocat' })
  await app.listen({ host: '127.0.0.1', port })

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  // Nothing may leave the origin (Bull Board's page links Google Fonts): the policy blocks it
  // before the browser asks (Chromium reports the request failed with "csp"). Any other request
  // for another origin, sent or tried, is kept here; sign-in's navigations are not requests of
  // the page's.
  const elsewhere = new Map<object, string>()
  page.on('request', (req) => {
    const url = req.url()
    if (!url.startsWith(`${base}/`) && !url.startsWith('data:') && !req.isNavigationRequest())
      elsewhere.set(req, url)
  })
  page.on('requestfailed', (req) => {
    if (req.failure()?.errorText === 'csp') elsewhere.delete(req)
  })
  // The whole round trip: board → /auth/login → the simulator (default login octocat) → callback → board.
  await page.goto(`${base}/admin/queues`)
  await page.waitForURL(`${base}/admin/queues`, { timeout: 120_000 })
  for (const name of ['clone', 'deploy', 'maintenance', 'webhooks']) {
    await page.getByText(name, { exact: true }).first().waitFor({ timeout: 120_000 })
  }
  // Open the clone queue so the screenshot shows a loaded page, not a spinner.
  await page.getByText('clone', { exact: true }).first().click()
  await page.waitForURL(/\/admin\/queues\/queue\/clone/, { timeout: 120_000 })
  await page
    .getByText('Loading...')
    .waitFor({ state: 'detached', timeout: 120_000 })
    .catch(() => {})
  const cookies = await page.context().cookies(base)
  const session = cookies.find((c) => c.name === 'portico_session')
  t.equal(session?.httpOnly, true)
  t.equal(session?.sameSite, 'Lax')
  await mkdir(ARTIFACTS, { recursive: true })
  const file = path.join(ARTIFACTS, 'bull-board.png')
  await page.screenshot({ path: file, fullPage: true })
  t.ok(existsSync(file), `screenshot saved to ${path.relative(process.cwd(), file)}`)

  // The API reference renders from the same origin too.
  await page.goto(`${base}/docs`)
  await page.locator('.opblock').first().waitFor({ timeout: 120_000 })
  t.ok(
    await page.getByText('/api/v1/tenants', { exact: true }).first().isVisible(),
    'the reference lists the routes',
  )
  t.same([...elsewhere.values()], [], 'no request left the origin')
})
