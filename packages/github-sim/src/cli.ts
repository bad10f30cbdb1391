import { parseArgs } from 'node:util'
import { startSimulator } from './simulator.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4010' },
    host: { type: 'string', default: '127.0.0.1' },
    seed: { type: 'string' },
    'data-dir': { type: 'string' },
    'no-auto-approve': { type: 'boolean', default: false },
    log: { type: 'boolean', default: false },
  },
})

const sim = await startSimulator({
  port: Number(values.port),
  host: values.host,
  seed: values.seed,
  dataDir: values['data-dir'],
  autoApprove: !values['no-auto-approve'],
  logger: values.log,
})

const lines = [
  `github-sim listening`,
  `  GITHUB_URL=${sim.url}`,
  `  GITHUB_API_URL=${sim.apiUrl}`,
  '',
  'Tokens:',
  ...sim.seed.users.flatMap((u) =>
    (u.tokens ?? []).map(
      (t) => `  ${u.login.padEnd(14)} ${t.token}  scopes: ${t.scopes.join(' ') || '(none)'}`,
    ),
  ),
  '',
  'OAuth apps:',
  ...(sim.seed.oauth?.apps ?? []).map(
    (a) =>
      `  GITHUB_OAUTH_CLIENT_ID=${a.client_id} GITHUB_OAUTH_CLIENT_SECRET=${a.client_secret}  callback ${a.callback_url}`,
  ),
  `  signed-in user for /login/oauth/authorize: ${sim.seed.oauth?.defaultLogin ?? '(first user)'} (override with &login=)`,
  '',
  'Repositories:',
  ...(sim.seed.repos ?? []).map(
    (r) => `  ${sim.url}/${r.owner}/${r.name}.git  (${r.private ? 'private' : 'public'})`,
  ),
]
process.stdout.write(`${lines.join('\n')}\n`)

const stop = async () => {
  await sim.close()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
