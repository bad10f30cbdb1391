import type { Redis } from 'ioredis'
import { createRedis } from './redis.js'

/**
 * How often a subscription's connection is pinged (ms). A path that goes dark without closing (a
 * NAT or firewall dropping idle connections, a failover without a reset) raises no event, and a
 * subscribed connection only receives. A PING still unanswered at the next beat counts as the
 * subscription lost (the connection is dropped and reconnects). See {@link RedisSubscription.live}.
 */
export const SUBSCRIPTION_HEARTBEAT_MS = 1000

/**
 * Heartbeats a connected but unsubscribed connection is given before it is dropped and opened
 * again: a path that goes dark during the handshake, `prepare` or SUBSCRIBE raises no event
 * either, and a failed SUBSCRIBE on a connection that stays up would otherwise never be retried.
 */
export const SUBSCRIBE_WITHIN_BEATS = 3

/** Options of {@link subscribeChannel}. */
export interface RedisSubscriptionOptions<T> {
  /** Where to open the dedicated connection (`redis://` or `rediss://`). */
  redisUrl: string
  /** The connection's CLIENT SETNAME, e.g. `portico-session-cache`. */
  connectionName: string
  channel: string
  /** What the subscription is for, in log lines (e.g. "session cache"). */
  what: string
  /** A pino-style logger (the app's). */
  log: { warn(obj: object, message: string): void }
  /**
   * Runs on each new connection before it subscribes (a subscribed connection accepts no other
   * commands but PING); its result is handed to `onSubscribed`. A rejection is logged and, like
   * a connection that has not subscribed within {@link SUBSCRIBE_WITHIN_BEATS} heartbeats of
   * connecting, the connection is dropped and opened again.
   */
  prepare?: (connection: Redis) => Promise<T>
  /**
   * Redis acknowledged the subscription on a new connection: from now on nothing published on the
   * channel is missed. Whatever was published while unsubscribed was, so assume it happened.
   */
  onSubscribed(prepared: T): void
  /** The subscription is lost, or its path stopped answering: messages may be missed from now on. */
  onLost?(): void
  /** One message on the channel, as received (a list for Redis' tracking invalidations). */
  onMessage(message: Buffer | Buffer[] | null): void
  /** Default {@link SUBSCRIPTION_HEARTBEAT_MS}. */
  heartbeatMs?: number
}

/** A channel subscription on a dedicated connection that reconnects and re-subscribes by itself. */
export interface RedisSubscription {
  /**
   * True while subscribed and the last PING (sent at most two heartbeats ago) was answered: every
   * message published before that PING was sent has been passed to `onMessage`, since Redis
   * answers a connection's commands and pushes in order.
   */
  readonly live: boolean
  /** Resolves with {@link live} once subscribed, or after `timeoutMs` (ms). */
  whenSubscribed(timeoutMs: number): Promise<boolean>
  /** Closes the connection; no callback runs afterwards and nothing more is logged. */
  close(): void
}

/**
 * Subscribes to `channel` over a connection of its own, re-subscribing by hand after every
 * reconnection (ioredis' `autoResubscribe` is off so that `prepare` can run first), with a PING
 * heartbeat. Warns once per outage, not once per reconnection attempt.
 */
export function subscribeChannel<T = undefined>(opts: RedisSubscriptionOptions<T>): RedisSubscription {
  const { channel, log, what } = opts
  const heartbeatMs = opts.heartbeatMs ?? SUBSCRIPTION_HEARTBEAT_MS
  const connection = createRedis(opts.redisUrl, 'worker', {
    connectionName: opts.connectionName,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
  })
  let closed = false
  let subscribed = false
  // Bumped whenever the connection is lost: a subscription started before then must not count.
  let epoch = 0
  // When the last answered PING was sent (epoch ms); 0 while not subscribed.
  let confirmedAt = 0
  let pingInFlight = false
  // Heartbeats since the current connection was established, while it is not subscribed; -1
  // while there is no connection. Counted in beats, not ms: after the event loop was blocked
  // (start-up, a busy machine) the first tick would otherwise fire before the I/O it waited for.
  let beatsUnsubscribed = -1
  let warned = false
  let waiters: (() => void)[] = []
  const live = () => subscribed && Date.now() - confirmedAt <= 2 * heartbeatMs
  const warn = (obj: object, message: string) => {
    if (closed || warned) return
    warned = true
    log.warn(obj, `${what}: ${message}`)
  }

  const lost = () => {
    epoch += 1
    pingInFlight = false
    confirmedAt = 0
    beatsUnsubscribed = -1
    if (!subscribed) return
    subscribed = false
    if (!closed) opts.onLost?.()
  }
  for (const event of ['close', 'end', 'reconnecting', 'error'] as const) connection.on(event, lost)
  connection.on('error', (err) =>
    warn({ err }, 'Redis connection error; messages are missed until it is back'),
  )
  connection.on('connect', () => {
    beatsUnsubscribed = 0
  })
  connection.on('ready', () => {
    const attempt = epoch
    const current = () => attempt === epoch && !closed && connection.status === 'ready'
    void (async () => {
      const prepared = (opts.prepare ? await opts.prepare(connection) : undefined) as T
      // Lost meanwhile: a SUBSCRIBE sent now would wait for the next connection and put it in
      // subscriber mode before its own `prepare` runs.
      if (!current()) return
      await connection.subscribe(channel)
      if (attempt !== epoch || closed) return
      subscribed = true
      warned = false
      confirmedAt = Date.now()
      opts.onSubscribed(prepared)
      for (const wake of waiters) wake()
      waiters = []
    })().catch((err: unknown) => {
      if (attempt === epoch) warn({ err }, `could not subscribe to ${channel}`)
    })
  })
  connection.on('messageBuffer', (from: Buffer, message: Buffer | Buffer[] | null) => {
    if (!closed && from.toString() === channel) opts.onMessage(message)
  })

  const heartbeat = setInterval(() => {
    if (closed) return
    if (!subscribed) {
      if (beatsUnsubscribed >= 0 && ++beatsUnsubscribed > SUBSCRIBE_WITHIN_BEATS) {
        lost()
        warn({}, `not subscribed within ${SUBSCRIBE_WITHIN_BEATS} heartbeats of connecting; reconnecting`)
        connection.disconnect(true)
      }
      return
    }
    if (pingInFlight) {
      lost()
      warn({}, 'the connection did not answer a PING in time; reconnecting it')
      connection.disconnect(true)
      return
    }
    const attempt = epoch
    const sentAt = Date.now()
    pingInFlight = true
    connection.ping().then(
      () => {
        if (attempt !== epoch) return
        pingInFlight = false
        confirmedAt = sentAt
      },
      () => {
        if (attempt === epoch) pingInFlight = false
      },
    )
  }, heartbeatMs)
  heartbeat.unref()

  return {
    get live() {
      return live()
    },
    whenSubscribed(timeoutMs) {
      if (subscribed || closed) return Promise.resolve(live())
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== wake)
          resolve(live())
        }, timeoutMs)
        timer.unref()
        const wake = () => {
          clearTimeout(timer)
          resolve(live())
        }
        waiters.push(wake)
      })
    },
    close() {
      if (closed) return
      closed = true
      clearInterval(heartbeat)
      lost()
      for (const wake of waiters) wake()
      waiters = []
      // disconnect(), not quit(): it only receives, and a QUIT sent into a dark connection would
      // hold the caller's shutdown until it times out.
      connection.disconnect()
    },
  }
}
