import { readFileSync } from 'node:fs'
import { metricsRegistry } from '@portico/core'
import t from 'tap'
import { parse } from 'yaml'

const root = new URL('../../../', import.meta.url)
const read = (file: string) => readFileSync(new URL(file, root), 'utf8')

/** Metric families an expression names: `portico_x_bucket` and `portico_x_count` are family `portico_x`. */
const families = (text: string) =>
  new Set(
    [...text.matchAll(/\bportico_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|count|sum)$/, '')),
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
