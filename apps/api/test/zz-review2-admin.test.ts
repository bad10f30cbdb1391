import net from 'node:net'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, signIn } from './helper.js'

function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text))
    let buf = ''
    s.on('data', (d) => { buf += d.toString('latin1') })
    s.setTimeout(3000, () => { s.destroy(); resolve(`${buf}<TIMEOUT>`) })
    s.on('close', () => resolve(buf))
    s.on('error', (e) => resolve(`${buf}<ERR ${e.message}>`))
  })
}

t.test('admin path tricks', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, { ...env, OPERATOR_GITHUB_IDS: '1, 583231' })
  const user = (await signIn(app, sim, 'hubot')).cookie
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as net.AddressInfo).port
  const paths = [
    '/admin/queues', '/admin/queues/', '//admin/queues', '/admin//queues', '/admin/queues//api/queues',
    '//admin/queues/api/queues', '/admin/queues/../admin/queues/api/queues', '/admin/queues/api/../api/queues',
    '/admin%2Fqueues/api/queues', '/admin/queues%2Fapi%2Fqueues', '/admin/queues/api%2Fqueues', '/admin/queues/%61pi/queues',
    '/ADMIN/queues/api/queues', '/Admin/Queues', '/admin/queues./api/queues', '/admin/queues/api/queues.',
    '/admin/queues/api/queues?x=/', '/admin/queues/api/queues;x', '/admin/queues/api/queues#x',
    '/admin/queues/static/main.js', '/admin/queues/queue/clone', '/admin/queues/api/redis/stats',
    'http://evil.com/admin/queues/api/queues', '*', '/admin/queues/API/queues', '/admin/queues/Api/queues',
    '/admin/queues/%2e%2e/queues/api/queues', '/admin/queues/api/queues%00', '/admin/queues/api/queues/',
    '/admin/queues/api//queues',
  ]
  const navigation = 'text/html,application/xhtml+xml'
  for (const who of ['anon', 'hubot']) for (const method of ['GET', 'HEAD', 'OPTIONS']) for (const p of paths) {
    for (const accept of [navigation, 'application/json']) {
      const cookie = who === 'hubot' ? `Cookie: ${user}\r\n` : ''
      const res = await raw(port, `${method} ${p} HTTP/1.1\r\nHost: localhost\r\nAccept: ${accept}\r\n${cookie}Connection: close\r\n\r\n`)
      const status = res.split('\r\n')[0]
      const loc = /location: (.*)/i.exec(res)?.[1] ?? ''
      const body = res.split('\r\n\r\n').slice(1).join('').slice(0, 100).replace(/\s+/g, ' ')
      t.comment(`${who} ${method} ${p} [${accept.slice(0, 9)}] -> ${status} ${loc} ${body}`)
    }
  }
})
