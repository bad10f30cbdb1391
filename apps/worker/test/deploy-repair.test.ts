import { deployJobId, encrypt } from '@portico/core'
import { findDeployment, insertDeployment } from '@portico/db'
import { deployJobOptions } from '@portico/pods'
import { startTestSimulator } from '@portico/testing'
import { pino } from 'pino'
import t from 'tap'
import { startWorker } from '../src/lib.js'
import { deployProcessor } from '../src/processors/deploy.processor.js'
import { DEPLOY_JOB_LOST, repairStuckDeployments } from '../src/processors/maintenance.processor.js'
import { waitFor, workerContext } from './fixtures/connections.js'

// Issue 10, item 8: no deployment row stays queued or running forever.
const { env, tokenOf } = await startTestSimulator(t)
const ctx = await workerContext(t, env)
const { config, db, queues } = ctx
const later = () => new Date(Date.now() + 10 * 60_000)

t.test('a deploy job whose database is gone through every attempt is failed by the repair', async (t) => {
  const row = await insertDeployment(db, {
    customer: 'lost',
    env: 'dev',
    instance_name: 'lost-dev-01',
    token_source: 'user',
    encrypted_token: encrypt(config.keyring, tokenOf('octocat')),
  })
  // A worker whose database is unreachable: the job fails before its processor can record anything.
  const deadDb = await startWorker(
    { ...config, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/gone', workerQueues: ['deploy'] },
    { deploy: deployProcessor },
    pino({ level: 'silent' }),
  )
  t.teardown(() => deadDb.close())
  await queues.deploy.add(
    'deploy',
    { deploymentId: row.id },
    { ...deployJobOptions(deployJobId(row.id)), attempts: 2, backoff: { type: 'fixed', delay: 20 } },
  )
  await waitFor(
    async () => ((await queues.deploy.getJobState(deployJobId(row.id))) === 'failed' ? true : undefined),
    120_000,
    'the job to fail',
  )
  await deadDb.close()
  t.equal((await findDeployment(db, row.id))?.status, 'queued', 'the row was left queued')

  t.equal(await repairStuckDeployments(ctx), 0, 'a row touched recently is not stale yet')
  t.equal(await repairStuckDeployments(ctx, later()), 1)
  const repaired = await findDeployment(db, row.id)
  t.match(repaired, {
    status: 'failed',
    error_code: DEPLOY_JOB_LOST,
    error_status: 500,
    encrypted_token: null,
  })
  t.match(repaired?.error_message, /ended \(failed\)/)
  t.notOk(repaired?.error_message?.includes(tokenOf('octocat')))
  t.equal(await repairStuckDeployments(ctx, later()), 0, 'idempotent')
})

t.test('a running deployment whose job was removed is failed; a waiting job keeps its row', async (t) => {
  const removed = await insertDeployment(db, { customer: 'gone', env: 'dev', instance_name: 'gone-dev-01' })
  await db.updateTable('deployments').set({ status: 'running' }).where('id', '=', removed.id).execute()
  const waiting = await insertDeployment(db, { customer: 'wait', env: 'dev', instance_name: 'wait-dev-01' })
  await queues.deploy.add(
    'deploy',
    { deploymentId: waiting.id },
    { ...deployJobOptions(deployJobId(waiting.id)), delay: 3600_000 },
  )
  t.equal(await repairStuckDeployments(ctx, later()), 1)
  t.match(await findDeployment(db, removed.id), { status: 'failed', error_code: DEPLOY_JOB_LOST })
  t.match((await findDeployment(db, removed.id))?.error_message, /lost before it finished/)
  t.equal((await findDeployment(db, waiting.id))?.status, 'queued')
})
