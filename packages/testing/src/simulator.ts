import {
  defaultSeed,
  type Seed,
  type Simulator,
  type SimulatorOptions,
  startSimulator,
} from '@portico/github-sim'
import type { Teardown } from './test-env.js'

/** A running simulator plus the configuration variables that point Portico at it. */
export interface TestSimulator {
  sim: Simulator
  /** GITHUB_URL, GITHUB_API_URL, the OAuth client, GH_TOKEN (portico-bot) and GH_REPO. */
  env: Record<string, string>
  /** A user's first token from the seed, by login. */
  tokenOf(login: string): string
}

/**
 * The default seed with its App's webhook pointed where nobody listens (the discard port): the
 * seed's own URL is `npm start`'s API (localhost:3000), which must never receive a test's
 * deliveries, signed with the dev secret it trusts. Tests that want deliveries pass a seed.
 */
function quietDefaultSeed(): Seed {
  const seed = structuredClone(defaultSeed) as Seed
  for (const app of seed.github_apps ?? []) {
    if (app.webhook) app.webhook.url = 'http://127.0.0.1:9/webhooks/github'
  }
  return seed
}

/** Starts the GitHub simulator for one test file; closed at teardown. */
export async function startTestSimulator(t: Teardown, opts: SimulatorOptions = {}): Promise<TestSimulator> {
  const sim = await startSimulator({ ...opts, seed: opts.seed ?? quietDefaultSeed() })
  t.teardown(() => sim.close())
  const tokenOf = (login: string): string => {
    const token = sim.seed.users.find((u) => u.login === login)?.tokens?.[0]?.token
    if (!token) throw new Error(`seed has no token for ${login}`)
    return token
  }
  const app = sim.seed.oauth?.apps?.[0]
  const env: Record<string, string> = {
    GITHUB_URL: sim.url,
    GITHUB_API_URL: sim.apiUrl,
    GH_REPO: 'acme/infra-specs',
  }
  if (app) {
    env.GITHUB_OAUTH_CLIENT_ID = app.client_id
    env.GITHUB_OAUTH_CLIENT_SECRET = app.client_secret
  }
  if (sim.seed.users.some((u) => u.login === 'portico-bot')) env.GH_TOKEN = tokenOf('portico-bot')
  return { sim, env, tokenOf }
}
