import { waitAtMost } from '@portico/core'
import pg from 'pg'

/**
 * The channel migration 0010's triggers notify at commit. Payloads:
 * `github_connections:<project uuid>`, `access` (tenants, projects or memberships changed) and
 * `*` (anything may have changed).
 */
export const CHANGES_CHANNEL = 'portico_changes'

/**
 * How often the listening connection is checked (ms): a connection whose path goes dark without
 * closing (a NAT or firewall dropping idle connections, a failover without a reset) raises no
 * event, and LISTEN alone sends nothing. A `SELECT 1` still unanswered at the next beat counts as
 * the connection lost. See {@link ChangeListener.confirmedAt}.
 */
export const HEARTBEAT_MS = 1000

/** The listening connection's `application_name`. */
export const CHANGE_LISTENER_NAME = 'portico-change-listener'

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
  /**
   * When the last answered check was sent (epoch ms; 0 while not listening): every change
   * committed before then has been passed to `onChange` (Postgres delivers a notice before the
   * answer to a later query on the same connection). A reader that must not miss changes should
   * trust the listener only while this is recent (e.g. at most `2 × HEARTBEAT_MS` old).
   */
  readonly confirmedAt: number
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
  let confirmedAt = 0
  let checkInFlight = false

  const lost = (err?: unknown) => {
    const lostClient = client
    client = undefined
    confirmedAt = 0
    checkInFlight = false
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
    const next = new pg.Client({
      connectionString: databaseUrl,
      // How operators (and tests) find it in pg_stat_activity.
      application_name: CHANGE_LISTENER_NAME,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    })
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
    confirmedAt = Date.now()
    handlers.onState(true)
  }

  const heartbeat = setInterval(() => {
    const current = client
    if (closed || !current || confirmedAt === 0) return
    if (checkInFlight) {
      lost(new Error(`change listener did not answer within ${HEARTBEAT_MS} ms`))
      return
    }
    const sentAt = Date.now()
    checkInFlight = true
    current.query('SELECT 1').then(
      () => {
        if (client !== current) return
        checkInFlight = false
        confirmedAt = sentAt
      },
      (err: unknown) => client === current && lost(err),
    )
  }, HEARTBEAT_MS)
  heartbeat.unref()

  void connect()
  return {
    get confirmedAt() {
      return confirmedAt
    },
    async close() {
      closed = true
      clearTimeout(retry)
      clearInterval(heartbeat)
      const last = client
      client = undefined
      if (last) {
        last.removeAllListeners()
        last.on('error', () => {})
        // Bounded: on a connection whose path went dark the goodbye is never answered.
        await waitAtMost(last.end(), 1000)
      }
    },
  }
}
