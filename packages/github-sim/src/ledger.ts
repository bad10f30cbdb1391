import type { LedgerEntry, LedgerFilter } from './types.js'

/** In-memory record of every request the simulator answered, for tests and benches to assert on. */
export class Ledger {
  readonly #entries: LedgerEntry[] = []

  /** Appends an entry (used by the server). */
  record(entry: LedgerEntry): void {
    this.#entries.push(entry)
  }

  /** A copy of all entries, oldest first. */
  entries(filter?: LedgerFilter): LedgerEntry[] {
    return filter ? this.#entries.filter((e) => matches(e, filter)) : [...this.#entries]
  }

  clear(): void {
    this.#entries.length = 0
  }

  /** Number of entries matching every given field of `filter`. */
  count(filter?: LedgerFilter): number {
    return filter ? this.#entries.filter((e) => matches(e, filter)).length : this.#entries.length
  }
}

function matches(entry: LedgerEntry, filter: LedgerFilter): boolean {
  for (const [key, value] of Object.entries(filter)) {
    if (value !== undefined && entry[key as keyof LedgerEntry] !== value) return false
  }
  return true
}
