import { ConfigSchema } from './config.js'

interface Prop {
  type?: string
  description?: string
  default?: unknown
  minimum?: number
  maximum?: number
  minLength?: number
  /** What `pattern` accepts, in words (config.ts). */
  expects?: string
}

/** Markers around the generated configuration table in README.md. */
export const CONFIG_TABLE_MARKERS = { start: '<!-- config:start -->', end: '<!-- config:end -->' } as const

const REQUIRED_IN_PRODUCTION = new Set(['SESSION_SECRET', 'TOKEN_ENCRYPTION_KEYS', 'DATABASE_URL'])
const DEV_ONLY_DEFAULT = new Set(['SESSION_SECRET', 'TOKEN_ENCRYPTION_KEYS'])
const entries = () => Object.entries(ConfigSchema.properties as Record<string, Prop>)

/**
 * The description, with what is accepted (an integer's range or minimum, a string's minimum
 * length, unless the description says it already) and "Required in production." for the secrets
 * production refuses to start without (once, if not already said).
 */
function describe(name: string, prop: Prop): string {
  const text = prop.description ?? ''
  const upper = prop.maximum !== undefined && prop.maximum < Number.MAX_SAFE_INTEGER
  let range = ''
  if (prop.type === 'integer' && upper) range = ` Accepted: ${prop.minimum ?? 0}–${prop.maximum}.`
  else if (prop.type === 'integer' && (prop.minimum ?? 0) > 0)
    range = ` Accepted: an integer ≥ ${prop.minimum}.`
  else if (prop.type === 'integer') range = ' Accepted: a whole number.'
  else if ((prop.minLength ?? 0) > 1 && !text.includes('≥')) range = ` At least ${prop.minLength} characters.`
  else if (prop.expects) range = ` Accepted: ${prop.expects}.`
  const required =
    REQUIRED_IN_PRODUCTION.has(name) && !text.includes('Required in production')
      ? ' Required in production.'
      : ''
  return `${text}${range}${required}`
}

function defaultOf(name: string, prop: Prop): string {
  if (DEV_ONLY_DEFAULT.has(name)) return 'development value; none in production'
  if (prop.default === undefined) return 'unset'
  return String(prop.default) === '' ? '(empty)' : `\`${String(prop.default)}\``
}

/** The text of `.env.example`, generated from the config schema. */
export function envExample(): string {
  const lines = [
    '# Portico configuration. Copy to .env for `npm start` and uncomment what you set: every variable',
    '# is optional in development, and a commented line shows the default (PUBLIC_URL then follows PORT).',
    '# Generated from packages/core/src/config.ts by `npm run env:docs`.',
    '',
  ]
  for (const [name, prop] of entries()) {
    lines.push(`# ${describe(name, prop)}`)
    lines.push(`# ${name}=${prop.default === undefined ? '' : String(prop.default)}`)
    lines.push('')
  }
  // Not the service's configuration: read by `npm start` alone (scripts/start.ts), which runs the
  // bundled simulator, and by no deployed process.
  lines.push(
    '# Read by `npm start` only: the port of the bundled GitHub simulator. Unset: 4010, or a free',
    '# port when 4010 is taken (start says which); set, that port or a clear error. 0 picks a free one.',
    '# SIM_PORT=',
    '',
  )
  return lines.join('\n')
}

/** The README's configuration table (Markdown), generated from the config schema. */
export function configTable(): string {
  const rows = entries().map(
    ([name, prop]) =>
      `| \`${name}\` | ${defaultOf(name, prop)} | ${describe(name, prop).replace(/\|/g, '\\|')} |`,
  )
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n')
}

/** `readme` with the text between the configuration markers replaced by {@link configTable}. */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(CONFIG_TABLE_MARKERS.start)
  const end = readme.indexOf(CONFIG_TABLE_MARKERS.end)
  if (start < 0 || end < start) throw new Error('README.md lacks the configuration table markers')
  return `${readme.slice(0, start + CONFIG_TABLE_MARKERS.start.length)}\n${configTable()}\n${readme.slice(end)}`
}
