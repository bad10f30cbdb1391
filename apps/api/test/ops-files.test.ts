import { readFileSync } from 'node:fs'
import { collectProcessMetrics, metricsRegistry, observeCache, observeQueueDepth } from '@portico/core'
// Each process registers its own families: the API's (request durations, with its metrics
// plugin) and the worker's (jobs, clones, analyses); queue depth and cache lookups once observed.
import '@portico/worker'
import t from 'tap'
import { parse } from 'yaml'
import '../src/plugins/app/metrics.js'

collectProcessMetrics()
const stopQueues = observeQueueDepth([])
const stopCache = observeCache('read', { hits: 0, misses: 0 })
t.teardown(() => {
  stopQueues()
  stopCache()
})

const root = new URL('../../../', import.meta.url)
const read = (file: string) => readFileSync(new URL(file, root), 'utf8')

/** Portico's own, prom-client's process metrics (`process_…`, `nodejs_…`). */
const METRIC = /\b(?:portico|process|nodejs)_[a-z0-9_]+/g
/** A histogram's series belong to its family: `portico_x_bucket` and `portico_x_count` are `portico_x`. */
const family = (name: string) => name.replace(/_(bucket|count|sum)$/, '')
/** Metric families an expression names. */
const families = (text: string) => new Set([...text.matchAll(METRIC)].map(([name]) => family(name)))
/** Labels every series has without being declared: Prometheus's target labels, a histogram's `le`. */
const IMPLICIT_LABELS = new Set(['job', 'instance', 'le'])
const labelNames = (name: string): string[] =>
  (metricsRegistry.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined)?.labelNames ??
  []

/** Every PromQL expression of the alert rules and the dashboard's panels. */
function expressions(): string[] {
  const alerts = parse(read('ops/prometheus/portico-alerts.yml')) as {
    groups: { rules: { expr: string }[] }[]
  }
  const exprs: string[] = alerts.groups.flatMap((g) => g.rules.map((r) => r.expr))
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk)
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'expr' && typeof value === 'string') exprs.push(value)
        else walk(value)
      }
    }
  }
  walk(JSON.parse(read('ops/grafana/portico-dashboard.json')))
  return exprs
}

t.test(
  'every label the alert rules and the dashboard select or group by is one the metric has',
  async (t) => {
    const exprs = expressions()
    t.ok(exprs.length > 10, `${exprs.length} expressions`)
    let checked = 0
    for (const expr of exprs) {
      // `name{label="x", other=~"y"}`: each label belongs to that metric.
      for (const [, name, selector] of expr.matchAll(
        /\b((?:portico|process|nodejs)_[a-z0-9_]+)\{([^}]*)\}/g,
      )) {
        for (const [, label] of selector!.matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)) {
          checked++
          t.ok(
            IMPLICIT_LABELS.has(label!) || labelNames(family(name!)).includes(label!),
            `${name}{${label}} in ${expr}`,
          )
        }
      }
      // `by (a, b)`: each label belongs to some metric of the expression.
      const names = [...families(expr)]
      for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
        for (const label of list!
          .split(',')
          .map((l) => l.trim())
          .filter(Boolean)) {
          checked++
          t.ok(
            IMPLICIT_LABELS.has(label) || names.some((n) => labelNames(n).includes(label)),
            `by (${label}) in ${expr}`,
          )
        }
      }
    }
    t.ok(checked > 15, `${checked} labels checked`)
    // A misspelt label fails: the check is not vacuous.
    t.notOk(labelNames('portico_queue_jobs').includes('queues'))
    t.ok(labelNames('portico_queue_jobs').includes('queue'))
  },
)

t.test('every metric the alert rules and the dashboard query is one Portico registers', async (t) => {
  const alerts = parse(read('ops/prometheus/portico-alerts.yml')) as {
    groups: { rules: { alert: string; expr: string }[] }[]
  }
  const dashboard = read('ops/grafana/portico-dashboard.json')
  JSON.parse(dashboard)
  const rules = alerts.groups.flatMap((g) => g.rules)
  t.ok(rules.length > 0)
  const queried = new Set([...rules.flatMap((r) => [...families(r.expr)]), ...families(dashboard)])
  t.ok(queried.size > 5, [...queried].join(' '))
  for (const name of queried) t.ok(metricsRegistry.getSingleMetric(name), `${name} is registered`)
  // A misspelt family fails: the check is not vacuous.
  t.notOk(metricsRegistry.getSingleMetric('portico_no_such_metric_total'))
  t.ok(
    rules.some((r) => r.expr.includes('portico_log_lines_dropped_total')),
    'dropped log lines raise an alert',
  )
})
