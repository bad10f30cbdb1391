// Plain JavaScript: it is preloaded with --import into processes (and their worker threads) that
// may not have a TypeScript loader yet.
/**
 * Preloaded (`--import`) into the processes `npm start` launches: when the launcher dies without
 * stopping them (SIGKILL, or tsx force-killing it), the child is re-parented; it then sends
 * itself one SIGTERM so its own graceful shutdown runs instead of it running on, orphaned.
 */
const parent = process.ppid
const timer = setInterval(() => {
  if (process.ppid === parent) return
  clearInterval(timer)
  process.kill(process.pid, 'SIGTERM')
}, 1000)
timer.unref()
