import t from 'tap'
import { serviceAddress } from '../src/service-address.js'

t.test('names user, host, port and path; never the password or the query', async (t) => {
  t.equal(
    serviceAddress('postgres://portico:s3cret@db.internal:5433/portico'),
    'portico@db.internal:5433/portico',
  )
  t.equal(serviceAddress('redis://:s3cret@127.0.0.1:6379/2'), '127.0.0.1:6379/2')
  t.equal(serviceAddress('rediss://default:pw@cache:6380'), 'default@cache:6380')
  t.equal(serviceAddress('postgres://u%40corp@h/db?password=s3cret'), 'u@corp@h/db')
  t.equal(serviceAddress('not a url s3cret'), '(unparsable)')
})
