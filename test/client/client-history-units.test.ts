import t from 'tap'
import { historyMessages, parseTimestamp, type ChatMessage } from '../../packages/client/src/index.js'

const HINT = 'Try: buttons, link, image, agent, timeout (or "timeout 1" for a one-second wait).'
const at = (iso: string): number => Date.parse(iso)

/** What the tests compare: a message less its `raw`, which is checked on its own. */
function plain (chat: ChatMessage[]): Array<Omit<ChatMessage, 'raw'>> {
  return chat.map(({ raw: _raw, ...rest }) => rest)
}

/** As the emulator's store keeps them: the request less clientId, the answer's `data`, agent replies and timeouts with no request. */
const PAIRS = {
  messages: [
    {
      questionId: 'q1',
      timestamp: '2026-03-01T10:00:00.100',
      request: { cid: 'tab-1', query: 'hello' },
      response: {
        nlpClass: '/CatchAll',
        confidence: -0.011,
        replies: [
          { type: 'text', text: 'You said: hello', markup: 'You said: <b>hello</b>', state: '/CatchAll' },
          { type: 'text', text: HINT, state: '/CatchAll' }
        ],
        answer: `You said: hello\n\n${HINT}`,
        newSessionStarted: true,
        endSession: false,
        debugData: []
      }
    },
    {
      questionId: 'q2',
      timestamp: '2026-03-01T10:00:04.000',
      request: { cid: 'tab-2', event: 'fileEvent', data: { name: 'a.pdf' } },
      response: { nlpClass: '/event', confidence: 0.9, replies: [{ type: 'text', text: 'Got the event "fileEvent".', state: '/event' }], answer: 'Got the event "fileEvent".' }
    },
    {
      questionId: 'q3',
      timestamp: '2026-03-01T10:00:05.000',
      request: { query: 'buttons' },
      response: {
        nlpClass: '/buttons',
        replies: [{ type: 'text', text: 'Pick one:', state: '/buttons' }, { type: 'buttons', buttons: [{ text: 'Yes' }, { text: 'No' }], state: '/buttons' }],
        answer: 'Pick one:'
      }
    },
    {
      questionId: 'q4',
      timestamp: '2026-03-01T10:00:09.000',
      request: { query: 'agent please' },
      response: {
        nlpClass: '/agent',
        replies: [
          { type: 'text', text: 'Connecting you to an agent. Say "bye" to go back to the bot.', state: '/agent' },
          { type: 'switch', firstMessage: 'agent please', closeChatPhrases: ['bye', '/close'], state: '/agent' }
        ],
        answer: 'Connecting you to an agent. Say "bye" to go back to the bot.'
      }
    },
    {
      questionId: 'q5',
      timestamp: '2026-03-01T10:00:12.000',
      request: null,
      response: { nlpClass: '/agent', confidence: 1, replies: [{ type: 'text', text: 'Hi, this is Alex.', state: '/agent' }], answer: 'Hi, this is Alex.' }
    },
    {
      questionId: 'q6',
      timestamp: '2026-03-01T10:01:12.000',
      request: null,
      response: { nlpClass: '/timeout/expired', confidence: 1, replies: [{ type: 'text', text: 'Are you still there?', state: '/timeout/expired' }], answer: 'Are you still there?' }
    }
  ]
}

t.test('the emulator\'s pairs: each gives the client\'s message, then the answer', async (t) => {
  const chat = historyMessages(PAIRS)
  t.same(chat.map((m) => [m.author, m.id]), [
    ['client', 'q1'], ['bot', 'q1'], ['client', 'q2'], ['bot', 'q2'], ['client', 'q3'], ['bot', 'q3'],
    ['client', 'q4'], ['bot', 'q4'], ['agent', 'q5'], ['bot', 'q6']
  ], 'an answer nobody asked for in /agent is the agent\'s; the bot speaking up after a timeout is the bot\'s')
  t.same(plain(chat.slice(0, 4)), [
    { id: 'q1', at: at('2026-03-01T10:00:00.100Z'), author: 'client', text: 'hello' },
    { id: 'q1', at: at('2026-03-01T10:00:00.100Z'), author: 'bot', text: `You said: hello\n\n${HINT}`, replies: PAIRS.messages[0]?.response?.replies },
    { id: 'q2', at: at('2026-03-01T10:00:04Z'), author: 'client', event: { name: 'fileEvent', data: { name: 'a.pdf' } } },
    { id: 'q2', at: at('2026-03-01T10:00:04Z'), author: 'bot', text: 'Got the event "fileEvent".', replies: PAIRS.messages[1]?.response?.replies }
  ], 'a zone-less time is UTC; an event request is an event, not a text')
  t.equal(chat[5]?.replies, PAIRS.messages[2]?.response?.replies, 'the replies are the upstream\'s, verbatim')
  t.equal(chat[0]?.raw, PAIRS.messages[0], 'raw is the source element')
  t.equal(chat[1]?.raw, PAIRS.messages[0], 'for both messages of a pair')
  t.equal(chat[8]?.text, 'Hi, this is Alex.')
})

t.test('the pairs of a server that differs a little', async (t) => {
  const body = {
    messages: [
      // The whole response rather than its data, and a text request.
      { questionId: 'r1', timestamp: 1772359200000, request: 'hi', response: { questionId: 'r1', data: { replies: [{ type: 'text', text: 'Hello!' }] } } },
      // An answer with no text reply and no `answer`: its replies, and no text.
      { questionId: 'r2', timestamp: '2026-03-01T10:00:01', request: { query: 'image' }, response: { replies: [{ type: 'image', imageUrl: 'https://example.com/a.png' }] } },
      // A request with neither query nor event, and an empty answer: nothing to show.
      { questionId: 'r3', timestamp: '2026-03-01T10:00:02', request: { cid: 'x' }, response: { replies: [] } },
      // Replies that are no replies are left out.
      { questionId: 'r4', timestamp: '2026-03-01T10:00:03', request: { query: 'ok' }, response: { replies: [null, 'text', { text: 'no type' }, { type: 'text', text: 'Fine.' }] } },
      { questionId: 'r5', request: { event: 'ping' }, response: null }
    ]
  }
  t.same(plain(historyMessages(body)), [
    { id: 'r1', at: 1772359200000, author: 'client', text: 'hi' },
    { id: 'r1', at: 1772359200000, author: 'bot', text: 'Hello!', replies: [{ type: 'text', text: 'Hello!' }] },
    { id: 'r2', at: at('2026-03-01T10:00:01Z'), author: 'client', text: 'image' },
    { id: 'r2', at: at('2026-03-01T10:00:01Z'), author: 'bot', replies: [{ type: 'image', imageUrl: 'https://example.com/a.png' }] },
    { id: 'r4', at: at('2026-03-01T10:00:03Z'), author: 'client', text: 'ok' },
    { id: 'r4', at: at('2026-03-01T10:00:03Z'), author: 'bot', text: 'Fine.', replies: [{ type: 'text', text: 'Fine.' }] },
    { id: 'r5', author: 'client', event: { name: 'ping' } }
  ], 'an undated message stays after the one before it')
})

t.test('pairs newest first, in whole seconds: each pair still comes question first', async (t) => {
  const pair = (id: string, second: number): Record<string, unknown> => ({
    questionId: id, timestamp: `2026-03-01T10:00:0${second}`, request: { query: `q ${id}` }, response: { answer: `a ${id}` }
  })
  const chat = historyMessages({ messages: [pair('n3', 2), pair('n2', 1), pair('n1', 1)] })
  t.same(chat.map((m) => m.text), ['q n1', 'a n1', 'q n2', 'a n2', 'q n3', 'a n3'])
})

/** As the bridge pushes them (token removed), with junk among them. */
const EVENTS = [
  { type: 'clientRequest', event: { questionId: 'e1', cid: 'tab-1', query: 'hello', timestamp: '2026-03-01T10:00:00.000' } },
  { type: 'botResponse', event: { questionId: 'e1', cid: 'tab-1', clientId: 'u-1', data: { replies: [{ type: 'text', text: 'You said: hello', state: '/CatchAll' }], answer: 'You said: hello' }, timestamp: '2026-03-01T10:00:00.000' } },
  { type: 'stateUpdate', event: { state: { step: 2 }, timestamp: '2026-03-01T10:00:01.000' } },
  null,
  42,
  'botResponse',
  { type: 'botResponse' },
  { type: 'clientRequest', event: { questionId: 'e0', timestamp: '2026-03-01T10:00:02.000' } },
  { type: 'clientRequest', event: { questionId: 'e2', event: 'fileEvent', data: { size: 3 }, timestamp: '2026-03-01T10:00:03' } },
  { type: 'agentResponse', event: { questionId: 'e3', clientId: 'u-1', text: 'Hi, this is Alex.', data: { replies: [{ type: 'text', text: 'Hi, this is Alex.', state: '/agent' }] }, timestamp: '2026-03-01T10:00:04.5Z' } },
  // An agent reply with its text only, as the emulator's faults send one.
  { type: 'agentResponse', event: { timestamp: '2026-03-01T10:00:05.000', text: 'cut short' } },
  { type: 'chatClosed', event: { text: 'The agent closed the chat.', timestamp: '2026-03-01T10:00:06.000' } },
  { type: 'typing', event: { timestamp: '2026-03-01T10:00:07.000' } },
  { type: 'agentResponse', event: { questionId: 'e4', data: { replies: [] }, timestamp: '2026-03-01T10:00:08.000' } }
]

t.test('/events elements, in an object or a bare array', async (t) => {
  const expected = [
    { id: 'e1', at: at('2026-03-01T10:00:00Z'), author: 'client', text: 'hello' },
    { id: 'e1', at: at('2026-03-01T10:00:00Z'), author: 'bot', text: 'You said: hello', replies: [{ type: 'text', text: 'You said: hello', state: '/CatchAll' }] },
    { id: 'e2', at: at('2026-03-01T10:00:03Z'), author: 'client', event: { name: 'fileEvent', data: { size: 3 } } },
    { id: 'e3', at: at('2026-03-01T10:00:04.500Z'), author: 'agent', text: 'Hi, this is Alex.', replies: [{ type: 'text', text: 'Hi, this is Alex.', state: '/agent' }] },
    { at: at('2026-03-01T10:00:05Z'), author: 'agent', text: 'cut short' },
    { at: at('2026-03-01T10:00:06Z'), author: 'system', text: 'The agent closed the chat.' }
  ]
  t.same(plain(historyMessages({ events: EVENTS })), expected, 'state updates, junk and texts of nothing are left out')
  t.same(plain(historyMessages(EVENTS)), expected, 'a bare array reads the same')
  t.equal(historyMessages(EVENTS)[3]?.raw, EVENTS[9], 'raw is the whole element')
})

/** The platform's entries, one per message, newest first, in whole seconds: a question and its answer share a second. */
const ENTRIES = {
  totalCount: 7,
  messages: [
    { questionId: 'p5', textMessage: 'The chat was closed by the operator', author: 'SYSTEM', status: null, eventData: null, replies: null, timestamp: '2026-03-01T10:03:00Z' },
    { questionId: 'p4', textMessage: 'Hello, I am Alex. How can I help?', author: 'OPERATOR', status: 'READ', eventData: null, replies: null, timestamp: 1772359320000 },
    { questionId: 'p3', textMessage: null, author: 'BOT', status: 'SENT', eventData: null, replies: [{ type: 'text', text: 'Got the event "fileEvent".' }], timestamp: '2026-03-01T10:01:00' },
    { questionId: 'p3', textMessage: null, author: 'CLIENT', status: null, eventData: { event: 'fileEvent', data: { name: 'a.pdf' } }, replies: null, timestamp: '2026-03-01T10:01:00' },
    { questionId: 'p1', textMessage: 'You said: hello', author: 'BOT', status: 'DELIVERED', eventData: null, replies: [{ type: 'text', text: 'You said: hello' }, { type: 'buttons', buttons: [{ text: 'Yes' }] }], timestamp: '2026-03-01T13:00:00+03:00' },
    { questionId: 'p1', textMessage: 'hello', author: 'CLIENT', status: null, eventData: null, replies: null, timestamp: '2026-03-01T10:00:00' },
    { questionId: 'p0', textMessage: null, author: 'BOT', status: 'NOT_SENT', eventData: null, replies: null, timestamp: '2026-03-01T09:59:00' },
    { author: 'ROBOT', textMessage: null, timestamp: '2026-03-01T09:58:00' },
    { author: 'ROBOT', textMessage: 'beep', timestamp: 'yesterday' }
  ]
}

t.test('the platform\'s entries: one message each, oldest first even when the server sends newest first', async (t) => {
  const chat = historyMessages(ENTRIES)
  t.same(plain(chat), [
    { author: 'system', text: 'beep' },
    { id: 'p1', at: at('2026-03-01T10:00:00Z'), author: 'client', text: 'hello' },
    { id: 'p1', at: at('2026-03-01T10:00:00Z'), author: 'bot', text: 'You said: hello', status: 'DELIVERED', replies: ENTRIES.messages[4]?.replies },
    { id: 'p3', at: at('2026-03-01T10:01:00Z'), author: 'client', event: { name: 'fileEvent', data: { name: 'a.pdf' } } },
    { id: 'p3', at: at('2026-03-01T10:01:00Z'), author: 'bot', text: 'Got the event "fileEvent".', status: 'SENT', replies: ENTRIES.messages[2]?.replies },
    { id: 'p4', at: 1772359320000, author: 'agent', text: 'Hello, I am Alex. How can I help?', status: 'READ' },
    { id: 'p5', at: at('2026-03-01T10:03:00Z'), author: 'system', text: 'The chat was closed by the operator' }
  ], 'OPERATOR is the agent; a bot entry with nothing to show and an unknown author with no text are left out')
  t.equal(chat[0]?.raw, ENTRIES.messages[8], 'an unknown author with a text is kept as system, with its raw')

  const oldestFirst = { totalCount: 2, messages: [ENTRIES.messages[5], ENTRIES.messages[4]] }
  t.same(historyMessages(oldestFirst).map((m) => m.author), ['client', 'bot'], 'a list already oldest first stays so')
  t.same(historyMessages({ messages: [{ author: 'client', textMessage: 'lower case' }, { author: 'User', textMessage: 'a user' }] }).map((m) => m.author),
    ['client', 'client'], 'authors in any case')
  t.same(plain(historyMessages({
    messages: [
      { author: 'CLIENT', eventData: 'start' }, { author: 'CLIENT', eventData: { name: 'open' } }, { author: 'CLIENT', eventData: { type: 'tap', data: 1 } },
      { author: 'CLIENT', eventData: { x: 1 } }, { author: 'CLIENT', textMessage: null, eventData: null }
    ]
  })), [
    { author: 'client', event: { name: 'start' } }, { author: 'client', event: { name: 'open' } }, { author: 'client', event: { name: 'tap', data: 1 } }
  ], 'eventData by name; one with no name is nothing to show')
  t.same(plain(historyMessages({ messages: [{ author: null, textMessage: 'who?' }] })), [{ author: 'system', text: 'who?' }], 'no author, a text: system')
})

t.test('a list that mixes shapes is read element by element, in time order', async (t) => {
  const body = {
    messages: [
      { type: 'agentResponse', event: { questionId: 'm3', text: 'agent', timestamp: '2026-03-01T10:00:03Z' } },
      { questionId: 'm1', timestamp: '2026-03-01T10:00:01Z', request: { query: 'pair' }, response: { answer: 'pair answer' } },
      { questionId: 'm2', author: 'BOT', textMessage: 'entry', timestamp: '2026-03-01T10:00:02Z' },
      { text: 'a bare text' }
    ]
  }
  t.same(historyMessages(body).map((m) => [m.author, m.text]), [
    ['client', 'pair'], ['bot', 'pair answer'], ['bot', 'entry'], ['system', 'a bare text'], ['agent', 'agent']
  ], 'the undated text stays after the element before it in the list')
})

t.test('never throws: an unknown body is an empty conversation', async (t) => {
  const odd: unknown[] = [
    undefined, null, 0, 'history', true, [], {}, { messages: 'none' }, { messages: null }, { events: {} }, { count: 3 },
    [[1, 2]], [{ request: 5, response: 'x' }], [{ type: 'botResponse', event: { data: 'x' } }], [{ author: 5 }],
    { messages: [{ questionId: 7, timestamp: {}, request: { query: 9, event: 1 }, response: { replies: 'x', answer: 3 } }] },
    Object.create(null) as unknown
  ]
  for (const body of odd) t.same(historyMessages(body), [], JSON.stringify(body) ?? String(body))
  t.same(plain(historyMessages({ items: [{ author: 'BOT', textMessage: 'under items' }] })), [{ author: 'bot', text: 'under items' }], 'other list keys')
})

t.test('parseTimestamp: ISO with or without ms and zone (none is UTC), and epoch numbers', async (t) => {
  const noon = Date.UTC(2026, 2, 1, 12, 0, 0)
  const cases: Array<[unknown, number | undefined]> = [
    ['2026-03-01T12:00:00.262', noon + 262],
    ['2026-03-01T12:00:00', noon],
    ['2026-03-01T12:00', noon],
    ['2026-03-01 12:00:00', noon],
    ['2026-03-01T12:00:00.262Z', noon + 262],
    ['2026-03-01t12:00:00z', noon],
    ['2026-03-01T12:00:00.5', noon + 500],
    ['2026-03-01T12:00:00.123456', noon + 123],
    ['2026-03-01T12:00:00,25', noon + 250],
    ['2026-03-01T15:00:00+03:00', noon],
    ['2026-03-01T15:00:00+0300', noon],
    ['2026-03-01T15:00:00+03', noon],
    ['2026-03-01T08:30:00-03:30', noon],
    ['2026-03-01T12:00:00 Z', noon],
    ['2026-03-01', Date.UTC(2026, 2, 1)],
    ['  2026-03-01T12:00:00  ', noon],
    [noon, noon],
    [String(noon), noon],
    [noon / 1000, noon],
    [1772366400.25, noon + 250],
    [0, 0],
    ['2026-13-01T12:00:00', undefined],
    ['2026-03-00T12:00:00', undefined],
    ['2026-03-01T12:61:00', undefined],
    ['12:00:00', undefined],
    ['yesterday', undefined],
    ['', undefined],
    [-5, undefined],
    [Number.NaN, undefined],
    [Number.POSITIVE_INFINITY, undefined],
    [null, undefined],
    [{}, undefined]
  ]
  for (const [value, expected] of cases) t.equal(parseTimestamp(value), expected, `${typeof value} ${String(value)}`)
})
