import { singleFlight } from './single-flight.js'

/** The counters a {@link GenerationCache} bumps. The caller owns the object and may add its own. */
export interface ReadCounters {
  /** Answered from memory, or by joining a load of the same key already in flight. */
  hits: number
  /** Loaded while the cache was live (the answer may have been kept). */
  misses: number
  /** Loaded because the cache was not live (nothing kept). */
  bypasses: number
}

/**
 * Where a reader keeps its entries (usually an LRU). `get` returns the value boxed, so that
 * `undefined` or `null` can be a remembered answer while a missing box is a miss.
 */
export interface EntryStore<V> {
  get(key: string): { value: V } | undefined
  set(key: string, value: V): void
}

/** Options of {@link generationCache}. */
export interface GenerationCacheOptions {
  stats: ReadCounters
  /**
   * True while change notices are arriving (the listener or subscriber answered recently).
   * Checked on every read and again before a loaded value is kept.
   */
  live: () => boolean
}

/**
 * Read-through over in-process stores whose entries are dropped by change notices (Postgres
 * NOTIFY for the API's read cache, Redis tracking invalidations for its session cache). Dropping
 * the entry is not enough: a load in flight when the notice arrives may have read the old state
 * and would store it after the drop. So each notice also calls {@link GenerationCache.changed},
 * which bumps a generation (a count of notices since creation), and a load keeps its value only
 * if the generation did not move while it ran and the cache is still live. Concurrent misses of
 * one key at one generation share one load ({@link singleFlight}); a miss after a notice never
 * joins a load from before it. While not live, every read loads and nothing is kept.
 */
export interface GenerationCache {
  /** Records a change notice (or the loss of them): loads in flight keep nothing. */
  changed(): void
  /**
   * A read of `key` through `store`: its entry, else `load()` (kept in `store` as above).
   * A rejected load rejects every read that joined it and keeps nothing.
   */
  reader<V>(store: EntryStore<V>): (key: string, load: () => Promise<V>) => Promise<V>
}

export function generationCache({ stats, live }: GenerationCacheOptions): GenerationCache {
  let generation = 0
  const joined = () => {
    stats.hits += 1
  }
  return {
    changed() {
      generation += 1
    },
    reader<V>(store: EntryStore<V>) {
      const loads = singleFlight<V>()
      return async (key: string, load: () => Promise<V>) => {
        if (!live()) {
          stats.bypasses += 1
          return load()
        }
        const entry = store.get(key)
        if (entry) {
          stats.hits += 1
          return entry.value
        }
        const started = generation
        return loads.run(
          key,
          started,
          async () => {
            stats.misses += 1
            const value = await load()
            if (live() && generation === started) store.set(key, value)
            return value
          },
          joined,
        )
      }
    },
  }
}
