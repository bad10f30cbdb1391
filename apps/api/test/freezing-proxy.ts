import net from 'node:net'

/**
 * A TCP proxy to `127.0.0.1:port` for tests. `freeze()` black-holes every connection whose client
 * has sent `marker`: bytes are dropped both ways while both sockets stay open, as when a NAT or
 * firewall drops an idle connection or a failover leaves no reset; `cut()` closes them. `down()`
 * closes every connection and resets new ones (the server is away) until `up()`. Closed at
 * `close()`.
 */
export async function freezingProxy(port: number, marker: string) {
  const marked = new Set<net.Socket>()
  const sockets = new Set<net.Socket>()
  let frozen = false
  let away = false
  let refused = 0
  const server = net.createServer((client) => {
    if (away) {
      refused += 1
      return void client.resetAndDestroy()
    }
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.on('data', (d) => {
      if (d.toString('latin1').includes(marker)) marked.add(client)
      if (!(frozen && marked.has(client))) upstream.write(d)
    })
    upstream.on('data', (d) => {
      if (!(frozen && marked.has(client))) client.write(d)
    })
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy())
      a.on('close', () => {
        b.destroy()
        sockets.delete(a)
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    /** How many connections have sent the marker so far. */
    marked: () => marked.size,
    freeze: () => {
      frozen = true
    },
    /** Closes every marked connection now (as a server-side kill would); later ones go through. */
    cut: () => {
      for (const client of marked) client.destroy()
      marked.clear()
    },
    down: () => {
      away = true
      for (const s of sockets) s.destroy()
      marked.clear()
    },
    /** How many connections were reset while down. */
    refused: () => refused,
    up: () => {
      away = false
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** `url` (postgres:// or redis://) with its host and port pointed at the proxy. */
export function throughProxy(url: string, proxyPort: number): string {
  const u = new URL(url)
  u.hostname = '127.0.0.1'
  u.port = String(proxyPort)
  return u.toString()
}
