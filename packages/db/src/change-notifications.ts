import pg from 'pg'

/**
 * The channel migration 0010's triggers notify at commit. Payloads:
 * `github_connections:<project uuid>`, `access` (tenants, projects or memberships changed) and
 * `*` (anything may have changed).
 */
export const CHANGES_CHANNEL = 'portico_changes'

/** Reconnect delays after the listening connection is lost: 250 ms doubling up to 30 s. */
const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 30_000

export interface ChangeHandlers {
  /** One notification's payload, in commit order. */
  onChange(payload: string): void
  /**
   * `true` once LISTEN is in place (again): anything missed while it was not must be assumed
   * changed. `false` as soon as the connection is lost or fails; until the next `true`, no
   * notification will arrive.
   */
  onState(listening: boolean): void
  /** A connection failure (logged by the caller); the listener keeps retrying. */
  onError(err: unknown): void
}

export interface ChangeListener {
  /** Stops listening and closes the connection; no handler is called afterwards. */
  close(): Promise<void>
}

/**
 * Listens on {@link CHANGES_CHANNEL} over a dedicated connection (LISTEN needs a session of its
 * own: not through a transaction-pooling proxy such as PgBouncer in transaction mode), and
 * reconnects with backoff when it is lost.
 */
export function listenForChanges(databaseUrl: string, handlers: ChangeHandlers): ChangeListener {
  let closed = false
  let client: pg.Client | undefined
  let retry: NodeJS.Timeout | undefined
  let delay = RETRY_MIN_MS

  const lost = (err?: unknown) => {
    const lostClient = client
    client = undefined
    if (lostClient) {
      lostClient.removeAllListeners()
      lostClient.on('error', () => {})
      lostClient.end().catch(() => {})
    }
    if (closed) return
    if (err !== undefined) handlers.onError(err)
    handlers.onState(false)
    if (!retry) {
      retry = setTimeout(connect, delay)
      retry.unref()
      delay = Math.min(delay * 2, RETRY_MAX_MS)
    }
  }

  async function connect(): Promise<void> {
    retry = undefined
    if (closed) return
    const next = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 })
    client = next
    next.on('notification', (msg) => {
      if (!closed && client === next && msg.channel === CHANGES_CHANNEL) handlers.onChange(msg.payload ?? '*')
    })
    next.on('error', (err) => client === next && lost(err))
    next.on('end', () => client === next && lost(new Error('change listener connection ended')))
    try {
      await next.connect()
      await next.query(`LISTEN ${CHANGES_CHANNEL}`)
    } catch (err) {
      if (client === next) lost(err)
      return
    }
    if (closed || client !== next) return
    delay = RETRY_MIN_MS
    handlers.onState(true)
  }

  void connect()
  return {
    async close() {
      closed = true
      clearTimeout(retry)
      const last = client
      client = undefined
      if (last) {
        last.removeAllListeners()
        last.on('error', () => {})
        await last.end().catch(() => {})
      }
    },
  }
}
