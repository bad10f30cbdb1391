/**
 * Cache misses for one key that arrive while a load of that key is in flight share it, instead of
 * each asking the store again: when a read-cache entry expires under load (the frontend polling
 * clone progress, 50 connections in `npm run bench`), every concurrent request missed and sent
 * its own query, where one does. A load joins only loads of the same `generation` (the caller's
 * count of change notices): a reader that starts after a notice must not receive what was read
 * before it. A rejected load rejects everyone who joined it and is not kept.
 */
export interface SingleFlight<V> {
  /**
   * `load()` for `key`, or the promise of the load of `key` already in flight at `generation`.
   * `joined` is called when this call shares another's load (for hit/miss counters).
   */
  run(key: string, generation: number, load: () => Promise<V>, joined?: () => void): Promise<V>
  /** Loads in flight (for tests). */
  readonly size: number
}

export function singleFlight<V>(): SingleFlight<V> {
  const inflight = new Map<string, { generation: number; promise: Promise<V> }>()
  return {
    run(key, generation, load, joined) {
      const pending = inflight.get(key)
      if (pending && pending.generation === generation) {
        joined?.()
        return pending.promise
      }
      const promise = load().finally(() => {
        if (inflight.get(key)?.promise === promise) inflight.delete(key)
      })
      inflight.set(key, { generation, promise })
      return promise
    },
    get size() {
      return inflight.size
    },
  }
}
