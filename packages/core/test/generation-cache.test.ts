import t from 'tap'
import { type EntryStore, generationCache } from '../src/generation-cache.js'
import { gate } from './fixtures/gate.js'

/** A Map-backed store, boxed as the reader expects, and a cache whose liveness the test sets. */
function setup<V>() {
  const entries = new Map<string, V>()
  const store: EntryStore<V> = {
    get: (key) => (entries.has(key) ? { value: entries.get(key) as V } : undefined),
    set: (key, value) => void entries.set(key, value),
  }
  const stats = { hits: 0, misses: 0, bypasses: 0 }
  const state = { live: true }
  const cache = generationCache({ stats, live: () => state.live })
  return { entries, stats, state, cache, read: cache.reader(store) }
}

t.test('concurrent misses share one load, which is kept and then served', async (t) => {
  const { entries, stats, read } = setup<string>()
  const { load, started, settle } = gate<string>()
  const reads = Array.from({ length: 3 }, () => read('k', load))
  t.equal(started.count, 1, 'one load for three misses')
  settle().resolve('v')
  t.same(await Promise.all(reads), ['v', 'v', 'v'])
  t.equal(entries.get('k'), 'v', 'kept')
  t.equal(await read('k', load), 'v')
  t.equal(started.count, 1, 'served from memory')
  t.same(stats, { hits: 3, misses: 1, bypasses: 0 }, 'joined reads and the served one are hits')
})

t.test('a load that a change notice overtook is not kept, and later misses do not join it', async (t) => {
  const { entries, stats, cache, read } = setup<string>()
  const before = gate<string>()
  const after = gate<string>()
  const old = read('k', before.load)
  cache.changed()
  const fresh = read('k', after.load)
  t.equal(after.started.count, 1, 'the read after the notice loads on its own')
  before.settle().resolve('old')
  t.equal(await old, 'old', 'the overtaken read still answers')
  t.notOk(entries.has('k'), 'but does not store what it read')
  after.settle().resolve('new')
  t.equal(await fresh, 'new')
  t.equal(entries.get('k'), 'new', 'the read after the notice is kept')
  t.same(stats, { hits: 0, misses: 2, bypasses: 0 })
})

t.test('one notice counts for every reader of the cache', async (t) => {
  const { entries, cache, read } = setup<string>()
  const others = new Map<string, string>()
  const readOther = cache.reader<string>({
    get: (key) => (others.has(key) ? { value: others.get(key) as string } : undefined),
    set: (key, value) => void others.set(key, value),
  })
  const a = gate<string>()
  const b = gate<string>()
  const pending = [read('k', a.load), readOther('k', b.load)]
  t.equal(a.started.count + b.started.count, 2, 'readers do not share loads')
  cache.changed()
  a.settle().resolve('a')
  b.settle().resolve('b')
  t.same(await Promise.all(pending), ['a', 'b'])
  t.notOk(entries.has('k'))
  t.notOk(others.has('k'))
})

t.test('while not live every read loads and nothing is kept', async (t) => {
  const { entries, stats, state, read } = setup<string>()
  entries.set('k', 'cached')
  state.live = false
  let loads = 0
  const load = async () => `v${++loads}`
  t.same(await Promise.all([read('k', load), read('k', load)]), ['v1', 'v2'], 'no memory, no sharing')
  t.equal(entries.get('k'), 'cached', 'nothing stored')
  t.same(stats, { hits: 0, misses: 0, bypasses: 2 })
})

t.test('a load that ends after the cache stopped being live is not kept', async (t) => {
  const { entries, state, read } = setup<string>()
  const { load, settle } = gate<string>()
  const pending = read('k', load)
  state.live = false
  settle().resolve('v')
  t.equal(await pending, 'v')
  t.notOk(entries.has('k'))
})

t.test('an undefined answer is remembered', async (t) => {
  const { stats, read } = setup<string | undefined>()
  let loads = 0
  const load = async () => {
    loads += 1
    return undefined
  }
  t.equal(await read('k', load), undefined)
  t.equal(await read('k', load), undefined)
  t.equal(loads, 1)
  t.same(stats, { hits: 1, misses: 1, bypasses: 0 })
})

t.test('a failed load fails everyone who joined it and keeps nothing', async (t) => {
  const { entries, read } = setup<string>()
  const { load, started, settle } = gate<string>()
  const first = read('k', load)
  const second = read('k', load)
  settle().reject(new Error('store down'))
  await t.rejects(first, /store down/)
  await t.rejects(second, /store down/)
  t.equal(started.count, 1)
  t.notOk(entries.has('k'))
  const again = gate<string>()
  const next = read('k', again.load)
  t.equal(again.started.count, 1, 'the next miss tries again')
  again.settle().resolve('v')
  t.equal(await next, 'v')
})
