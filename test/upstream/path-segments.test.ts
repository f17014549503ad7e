import t from 'tap'
import { isDotSegment, maskToken, pathSegment, tokenPath } from '../../dist/upstream/json.js'
import { callFor } from '../../dist/upstream/calls.js'
import { BridgeError } from '../../dist/socket/errors.js'

t.test('pathSegment refuses what would be no name and encodes the rest', async (t) => {
  for (const value of ['.', '..', '']) {
    t.throws(() => pathSegment(value, 'questionId'), { name: 'BridgeError', code: 'BAD_REQUEST', message: /^questionId must not be/ }, `${JSON.stringify(value)} is refused`)
  }
  t.equal(pathSegment('a.b', 'x'), 'a.b')
  t.equal(pathSegment('..a', 'x'), '..a')
  t.equal(pathSegment('...', 'x'), '...', 'three dots are a name to URL parsers')
  t.equal(pathSegment('a/b', 'x'), 'a%2Fb', 'a slash stays inside the segment')
  t.equal(pathSegment('%2e%2e', 'x'), '%252e%252e', 'a percent is encoded, so an encoded dot stays a name')
  t.equal(pathSegment('50%', 'x'), '50%25')
  t.equal(pathSegment('a?b#c d', 'x'), 'a%3Fb%23c%20d')
  t.throws(() => pathSegment('x', 'x', () => '%2E%2e'), { code: 'BAD_REQUEST' }, 'an escape that yields an encoded dot segment is refused too')
})

t.test('isDotSegment is exactly "." and ".."', async (t) => {
  t.ok(isDotSegment('.'))
  t.ok(isDotSegment('..'))
  for (const value of ['', '...', '..a', 'a.', '%2e']) t.notOk(isDotSegment(value), JSON.stringify(value))
})

t.test('the token keeps its own escaping and is refused as a dot segment', async (t) => {
  t.equal(tokenPath('abc:def-123'), 'abc:def-123', 'a colon goes as it is')
  t.equal(tokenPath('a/b?c#d%e'), 'a%2Fb%3Fc%23d%25e')
  for (const token of ['.', '..', '']) t.throws(() => tokenPath(token), { code: 'BAD_REQUEST' }, `token ${JSON.stringify(token)}`)
  t.equal(maskToken('echo ..', '..'), 'echo [redacted]', 'masking a token never throws')
})

t.test('callFor puts every path value through pathSegment', async (t) => {
  t.equal(callFor({ type: 'getStatus', id: '1', questionId: 'q/1' }, 'c:1', 'cid').path, '/client/c%3A1/message/q%2F1/status')
  for (const questionId of ['.', '..']) {
    t.throws(() => callFor({ type: 'getStatus', id: '1', questionId }, 'c1', 'cid'), BridgeError)
    t.throws(() => callFor({ type: 'setStatus', id: '1', questionId, status: 'READ' }, 'c1', 'cid'), { code: 'BAD_REQUEST', message: /^questionId/ })
  }
  for (const clientId of ['.', '..', '']) {
    t.throws(() => callFor({ type: 'getState', id: '1' }, clientId, 'cid'), { code: 'BAD_REQUEST', message: /^clientId/ }, `clientId ${JSON.stringify(clientId)}`)
  }
})
