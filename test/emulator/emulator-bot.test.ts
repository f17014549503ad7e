import t from 'tap'
import { answerOf, botTurn } from '../../dist/emulator/bot.js'

t.test('every reply type shows up by keyword, each with a state', async t => {
  const cases: Array<[string, string]> = [
    ['hello', 'text'],
    ['show me BUTTONS', 'buttons'],
    ['a link please', 'inlineButtons'],
    ['an image', 'image'],
    ['call an agent', 'switch'],
    ['operator!', 'switch'],
    ['timeout', 'timeout']
  ]
  for (const [query, type] of cases) {
    const turn = botTurn({ query })
    t.ok(turn.replies.some(r => r.type === type), `${query} → ${type}`)
    t.ok(turn.replies.every(r => typeof r.state === 'string' && r.state.startsWith('/')), 'state on every reply')
  }
})

t.test('the default reply echoes with markup and a hint', async t => {
  const turn = botTurn({ query: 'a & b' })
  t.equal(turn.nlpClass, '/CatchAll')
  t.match(turn.replies[0], { type: 'text', text: 'You said: a & b', markup: 'You said: <b>a &#38; b</b>' })
  t.match(turn.replies[1], { type: 'text', text: /buttons/ })
  t.equal(turn.followUp, undefined)
})

t.test('links carry urls, the image is inline, nothing is fetched', async t => {
  const link = botTurn({ query: 'link' }).replies.find(r => r.type === 'inlineButtons')
  t.ok((link?.buttons as Array<{ url: string }>).every(b => b.url.startsWith('https://')))
  const image = botTurn({ query: 'picture' }).replies[0]
  t.match(image?.imageUrl, /^data:image\/svg\+xml;base64,/)
})

t.test('hand-over and timeout ask for a follow-up', async t => {
  const agent = botTurn({ query: 'agent please' })
  t.same(agent.followUp, { kind: 'agent' })
  t.match(agent.replies[1], { type: 'switch', firstMessage: 'agent please', closeChatPhrases: ['bye', '/close'] })
  const wait = botTurn({ query: 'timeout 2.5' })
  t.same(wait.followUp, { kind: 'timeout', seconds: 2.5, targetState: '/timeout/expired' })
  t.match(wait.replies[1], { type: 'timeout', interval: 2.5, targetState: '/timeout/expired' })
  t.equal(botTurn({ query: 'timeouts are bad' }).followUp, undefined, 'whole words only')
})

t.test('events are named back; answer joins text replies only', async t => {
  t.match(botTurn({ event: 'fileEvent' }).replies, [{ type: 'text', text: 'Got the event "fileEvent".' }])
  t.equal(answerOf([
    { type: 'text', text: 'one', state: '/' },
    { type: 'buttons', buttons: [], state: '/' },
    { type: 'text', text: 'two', state: '/' }
  ]), 'one\n\ntwo')
  t.equal(answerOf([{ type: 'image', imageUrl: 'x', state: '/' }]), '')
})
