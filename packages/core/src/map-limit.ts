import pLimit from 'p-limit'

/** Runs `fn` over `items`, at most `limit` at a time (p-limit), keeping the order of results. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(limit)
  return Promise.all(items.map((item) => run(() => fn(item))))
}
