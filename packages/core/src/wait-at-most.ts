/**
 * Waits for `work` to settle (its outcome ignored) or for `ms` milliseconds, whichever comes
 * first, and clears its timer either way. For goodbyes on shutdown: a connection whose path went
 * dark never answers them, and a close must not hang on it.
 */
export async function waitAtMost(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    work.catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ])
  clearTimeout(timer)
}
