/**
 * Where a `postgres://` or `redis://` URL points, for messages: `user@host:port/path`, never the
 * password or the query (which may carry one). A string that is not a URL gives `(unparsable)`.
 */
export function serviceAddress(url: string): string {
  try {
    const u = new URL(url)
    const user = u.username ? `${decodeURIComponent(u.username)}@` : ''
    return `${user}${u.host}${u.pathname === '/' ? '' : u.pathname}`
  } catch {
    return '(unparsable)'
  }
}
