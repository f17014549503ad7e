import t from 'tap'
import { idOf, readFrame, requestProblem } from '../../dist/socket/inbound.js'
import type { RequestFrame } from '../../dist/socket/protocol.js'

// What a session makes of a client's text frame, before any socket is involved.

t.test('a frame is read only when it is a JSON object with a string type, not nested too deep', async (t) => {
  t.same(readFrame('{"type":"ping"}'), { type: 'ping', frame: { type: 'ping' } })
  t.same(readFrame('not json'), { problem: 'frame is not valid JSON' })
  t.same(readFrame('[1]'), { problem: 'frame must be a JSON object' })
  t.same(readFrame('null'), { problem: 'frame must be a JSON object' })
  t.same(readFrame('{"type":3}'), { problem: 'frame has no string "type"' })
  const deep = '{"type":"send","id":"d1","event":' + '{"a":'.repeat(40) + '1' + '}'.repeat(40) + '}'
  t.match(readFrame(deep), { problem: /nested deeper than 32 levels/, id: 'd1' }, 'the id is kept to answer with')
})

t.test('a request names what is wrong with its fields', async (t) => {
  const req = (f: object): RequestFrame => f as RequestFrame
  t.equal(requestProblem(req({ type: 'send', id: 'a', query: 'hi' })), undefined)
  t.match(requestProblem(req({ type: 'send', id: 'a', query: 'hi', clientId: 'other' })), /clientId comes from the session/)
  t.match(requestProblem(req({ type: 'send', id: 'a' })), /exactly one of "query" and "event"/)
  t.match(requestProblem(req({ type: 'send', id: 'a', query: 'hi', event: 'e' })), /exactly one of "query" and "event"/)
  t.match(requestProblem(req({ type: 'send', id: 'a', query: 5 })), /^send: /)
})

t.test('an id is usable in an answer only when it is a short, non-empty string', async (t) => {
  t.equal(idOf({ id: 'x1' }), 'x1')
  t.equal(idOf({ id: '' }), undefined)
  t.equal(idOf({ id: 'x'.repeat(65) }), undefined)
  t.equal(idOf({ id: 7 }), undefined)
})
