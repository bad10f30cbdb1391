import type { Executor } from './db.js'

/** Whether a pg error is a unique violation, optionally of one named constraint or index. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint)
}

/**
 * Whether Postgres ended a transaction so that another could go on (SQLSTATE 40001
 * serialization_failure, 40P01 deadlock_detected; PostgreSQL docs, appendix A): nothing of it
 * was written, and running it again can succeed.
 */
export function isTransactionConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === '40001' || code === '40P01'
}

/**
 * Runs `work` in a transaction, and again while Postgres ends it for a deadlock or a
 * serialization failure ({@link isTransactionConflict}), up to `attempts` runs in all: the retry
 * PostgreSQL's docs ask of applications ("Serialization Failure Handling"). Only for work that is
 * safe to run twice and does nothing outside the database. Given a transaction already, `work`
 * runs once in it: whoever owns that transaction decides about running it again.
 * @throws the last run's error, or the first error that is not a conflict.
 */
export async function transactionWithRetry<T>(
  db: Executor,
  work: (trx: Executor) => Promise<T>,
  opts: {
    /** Runs in all, the first included (default 3). */
    attempts?: number
    /** Called before each run again, with the conflict and the run that met it (1-based). */
    onRetry?: (err: unknown, attempt: number) => void
  } = {},
): Promise<T> {
  if (db.isTransaction) return work(db)
  const attempts = opts.attempts ?? 3
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work)
    } catch (err) {
      if (attempt >= attempts || !isTransactionConflict(err)) throw err
      opts.onRetry?.(err, attempt)
    }
  }
}
