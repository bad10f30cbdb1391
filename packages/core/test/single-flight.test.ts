import t from 'tap'
import { singleFlight } from '../src/single-flight.js'
import { gate } from './fixtures/gate.js'

t.test('misses of one key at one generation share one load', async (t) => {
  const flight = singleFlight<string>()
  const { load, started, settle } = gate<string>()
  let joins = 0
  const calls = Array.from({ length: 5 }, () => flight.run('k', 0, load, () => joins++))
  t.equal(started.count, 1, 'one load')
  t.equal(joins, 4, 'four joined it')
  settle().resolve('v')
  t.same(await Promise.all(calls), ['v', 'v', 'v', 'v', 'v'])
  t.equal(flight.size, 0, 'nothing left in flight')
  // Once settled, the next miss loads again.
  const again = gate<string>()
  const next = flight.run('k', 0, again.load)
  t.equal(again.started.count, 1)
  again.settle().resolve('w')
  t.equal(await next, 'w')
})

t.test('a miss after a change notice does not join a load from before it', async (t) => {
  const flight = singleFlight<string>()
  const before = gate<string>()
  const after = gate<string>()
  const old = flight.run('k', 0, before.load)
  const fresh = flight.run('k', 1, after.load)
  const alsoFresh = flight.run('k', 1, after.load)
  t.equal(before.started.count, 1)
  t.equal(after.started.count, 1, 'the readers after the notice share their own load')
  before.settle().resolve('old')
  t.equal(flight.size, 1, 'the older load ending does not drop the newer one')
  after.settle().resolve('new')
  t.same(await Promise.all([old, fresh, alsoFresh]), ['old', 'new', 'new'])
  t.equal(flight.size, 0)
})

t.test('other keys load on their own', async (t) => {
  const flight = singleFlight<string>()
  const a = gate<string>()
  const b = gate<string>()
  const pa = flight.run('a', 0, a.load)
  const pb = flight.run('b', 0, b.load)
  t.equal(a.started.count + b.started.count, 2)
  a.settle().resolve('A')
  b.settle().resolve('B')
  t.same(await Promise.all([pa, pb]), ['A', 'B'])
})

t.test('a failed load fails everyone who joined it and is not kept', async (t) => {
  const flight = singleFlight<string>()
  const { load, started, settle } = gate<string>()
  const first = flight.run('k', 0, load)
  const second = flight.run('k', 0, load)
  settle().reject(new Error('store down'))
  await t.rejects(first, /store down/)
  await t.rejects(second, /store down/)
  t.equal(started.count, 1)
  t.equal(flight.size, 0, 'the next miss tries again')
})
