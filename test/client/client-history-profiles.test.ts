import t from 'tap'
import WebSocket from 'ws'
import { BridgeClient, MemoryStorage, type ChatMessage } from '../../packages/client/src/index.js'
import type { ProfileName } from '../../dist/emulator/index.js'
import { startBridge, TOKEN } from '../fixtures/bridge.js'

const lines = (chat: ChatMessage[]): string[] => chat.map((m) => `${m.author}: ${m.text ?? ''}`)

// The history reads as one conversation whichever shape and time format the Chat API answers with.
const VARIANTS: ProfileName[][] = [[], ['entry-history'], ['entry-history', 'whole-seconds'], ['zoned'], ['second-stamps', 'late-stamps']]

for (const profiles of VARIANTS) {
  t.test(`history() on ${profiles.length === 0 ? 'the default' : profiles.join(',')}: the conversation, oldest first`, async (t) => {
    const h = await startBridge(t, {}, { profiles, holdMs: 1500 })
    const client = new BridgeClient({ url: h.wsUrl, WebSocket, storage: new MemoryStorage(), cid: 'tab' })
    t.teardown(() => { client.close() })
    await client.connect()
    const hello = await client.send('hello')
    h.emulator.agentReply(TOKEN, client.clientId ?? '', 'Hi, this is Alex.')
    const history = await client.history({ limit: 10 })
    t.same(lines(history.chat), ['client: hello', `bot: ${hello.data.answer ?? ''}`, 'agent: Hi, this is Alex.'])
    t.ok(history.chat.every((m) => typeof m.at === 'number' && Number.isFinite(m.at)), 'every message has a time')
  })
}
