/**
 * How soon after the first stop signal (ms) a repeat of it counts as the same request delivered
 * again: a signal sent to a process group reaches npm, tsx and the process itself, and each
 * launcher forwards its copy, all within milliseconds. A repeat after this is someone asking
 * again, who wants the process gone now.
 */
export const REPEATED_SIGNAL_MS = 1000

/** The signals that ask a Portico process to stop. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const
export type StopSignal = (typeof STOP_SIGNALS)[number]

/** What {@link onStopSignals} calls. */
export interface StopSignalHandlers {
  /** The first stop signal: close gracefully. Called once. */
  stop(signal: StopSignal): void
  /** A stop signal more than `withinMs` after the first: exit now. */
  again(signal: StopSignal): void
}

/**
 * Listens for SIGTERM and SIGINT: the first calls `stop`, copies of it arriving within
 * `withinMs` (default {@link REPEATED_SIGNAL_MS}) are ignored, and any later one calls `again`.
 * @returns a function that removes the listeners.
 */
export function onStopSignals(handlers: StopSignalHandlers, withinMs = REPEATED_SIGNAL_MS): () => void {
  let firstAt: number | undefined
  const listener = (signal: StopSignal) => {
    if (firstAt === undefined) {
      firstAt = Date.now()
      handlers.stop(signal)
    } else if (Date.now() - firstAt > withinMs) handlers.again(signal)
  }
  for (const signal of STOP_SIGNALS) process.on(signal, listener)
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, listener)
  }
}
