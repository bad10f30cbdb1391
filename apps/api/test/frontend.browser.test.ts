import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, startTestSimulator } from '@portico/testing'
import { processors, startWorker } from '@portico/worker'
import { pino } from 'pino'
import t from 'tap'
import { build } from './helper.js'

const CHROMIUM = '/usr/bin/chromium'
const here = path.dirname(fileURLToPath(import.meta.url))
const ARTIFACTS = path.resolve(here, '../../../test-artifacts')
const STATIC_DIR = path.join(here, 'fixtures/frontend')
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`

const { env } = await startTestSimulator(t)

async function launch(t: { teardown(fn: () => unknown): void }) {
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  await mkdir(ARTIFACTS, { recursive: true })
  return browser
}

const shot = async (
  t: { ok(v: unknown, m: string): void },
  page: { screenshot(o: object): Promise<unknown> },
  name: string,
) => {
  const file = path.join(ARTIFACTS, name)
  await page.screenshot({ path: file, fullPage: true })
  t.ok(existsSync(file), `screenshot ${path.relative(process.cwd(), file)}`)
}

t.test('the existing frontend, served through STATIC_DIR, works unchanged', { skip }, async (t) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const app = await build(t, {
    ...env,
    PUBLIC_URL: base,
    STATIC_DIR,
    GITHUB_WRITE_SPACING_MS: '20',
    DEPLOY_WAIT_MS: '60000',
  })
  const worker = await startWorker(
    { ...app.config, workerQueues: ['deploy'] },
    processors,
    pino({ level: 'silent' }),
  )
  t.teardown(() => worker.close())
  await app.listen({ host: '127.0.0.1', port })

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1024, height: 700 } })
  // Signed out: the app sends the browser to /auth/login → the simulator (octocat) → back on /.
  await page.goto(`${base}/`)
  await page.waitForURL(`${base}/`, { timeout: 120_000 })
  await page.locator('#user').getByText('octocat').waitFor({ timeout: 120_000 })
  await page.getByRole('link', { name: 'alpha/dev' }).waitFor({ timeout: 120_000 })
  t.ok(await page.getByRole('link', { name: 'gamma/prd' }).isVisible(), 'the pod list')
  await shot(t, page, 'frontend-1-pods.png')

  // A real navigation to a history-mode route: the server answers index.html.
  await page.getByRole('link', { name: 'alpha/dev' }).click()
  await page.waitForURL(`${base}/pod/alpha/dev`)
  await page.locator('#instance-name').waitFor({ timeout: 120_000 })
  t.equal(await page.locator('#title').textContent(), 'alpha/dev')
  t.equal(await page.locator('#instance-name').textContent(), 'alpha-dev-01')
  await shot(t, page, 'frontend-2-pod.png')

  await page.locator('#name').fill('alpha-dev-42')
  await page.getByRole('button', { name: 'Deploy' }).click()
  await page
    .locator('#result')
    .getByText(/Pull request #\d+/)
    .waitFor({ timeout: 90_000 })
  const result = String(await page.locator('#result').textContent())
  t.match(result, /^Pull request #\d+ http.*\/acme\/infra-specs\/pull\/\d+$/)
  t.equal(await page.locator('#error').textContent(), '')
  await shot(t, page, 'frontend-3-deployed.png')

  await page.locator('#name').fill('Bad_Name')
  await page.getByRole('button', { name: 'Deploy' }).click()
  await page
    .locator('#error')
    .getByText(/Deployment Failed/)
    .waitFor({ timeout: 120_000 })
  t.equal(
    await page.locator('#error').textContent(),
    'Deployment Failed — instance_name must be lowercase letters, numbers, and hyphens only (no uppercase, no underscores, no spaces)',
    'the human message, not "Bad Request"',
  )
  await shot(t, page, 'frontend-4-invalid.png')

  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByText('Signed out').waitFor({ timeout: 120_000 })
  const after = await page.evaluate(async () => (await fetch('/api/auth/user')).status)
  t.equal(after, 401, 'the session has ended')
  await shot(t, page, 'frontend-5-logged-out.png')
})

t.test('the landing page in a real browser, signed out then signed in', { skip }, async (t) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const app = await build(t, { ...env, PUBLIC_URL: base })
  await app.listen({ host: '127.0.0.1', port })

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1024, height: 600 } })
  await page.goto(`${base}/`)
  await page.getByRole('heading', { name: 'Portico' }).waitFor({ timeout: 120_000 })
  const signIn = page.getByRole('link', { name: 'Sign in with GitHub' })
  t.ok(await signIn.isVisible(), 'signed out: a sign-in link')
  t.ok(await page.getByRole('link', { name: /Bull Board/ }).isVisible(), 'Bull Board is linked')
  await shot(t, page, 'landing-signed-out.png')

  await signIn.click()
  await page.waitForURL(`${base}/`, { timeout: 120_000 })
  await page.getByText(/Signed in as/).waitFor({ timeout: 120_000 })
  t.match(await page.locator('.user').textContent(), /\(@octocat\)/)
  t.notOk(await page.getByRole('link', { name: 'Sign in with GitHub' }).count(), 'no sign-in link any more')
  await shot(t, page, 'landing-signed-in.png')
})
