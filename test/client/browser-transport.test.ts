import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { TOKEN } from '../fixtures/bridge.js'
import { browserSkip, cutSockets, keys, launchBrowser, newChatPage, say, startDemo, type DemoHarness } from '../fixtures/browser.js'
import { clusterEnv, redisSkip, startClusterEmulator, startInstances } from '../fixtures/cluster.js'
import { startHttpProxy } from '../fixtures/http-proxy.js'
import { pollsHeld } from '../fixtures/waits.js'

const skip = browserSkip()

async function messageCount (page: Page, n: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('#log .msg[data-key]').length === n, n)
}

/**
 * The demo page's whole round over the HTTP transport: a message and the
 * bot's answer, an agent's reply pushed, the stream dropped by `drop` with
 * an agent's reply sent meanwhile, and a message after the resume; every
 * message shown once.
 */
async function chatOverHttp (t: Test, h: DemoHarness, page: Page, clientId: string, errors: string[], drop: () => void): Promise<void> {
  t.equal(await page.getAttribute('#status', 'data-transport'), 'http', 'the page is on the HTTP transport')
  t.equal(await page.textContent('#status-text'), 'Online (over HTTP)')
  await say(page, 'hello')
  await page.waitForSelector('.msg.bot:has-text("You said: hello")')
  h.emulator.agentReply(TOKEN, clientId, 'an agent writes')
  await page.waitForSelector('.msg.agent:has-text("an agent writes")')
  await messageCount(page, 3)

  // A new stream after the drop: the page's state goes to reconnecting and back, and what came meanwhile is shown.
  const reconnected = page.waitForFunction(() => (window as unknown as { sawReconnect?: boolean }).sawReconnect === true)
  await page.evaluate(() => {
    const status = document.querySelector('#status') as HTMLElement
    new MutationObserver(() => { if (status.dataset.state === 'reconnecting') (window as unknown as { sawReconnect: boolean }).sawReconnect = true })
      .observe(status, { attributes: true, attributeFilter: ['data-state'] })
  })
  drop()
  h.emulator.agentReply(TOKEN, clientId, 'while the stream was down')
  await reconnected
  await page.waitForSelector('.msg.agent:has-text("while the stream was down")')
  await page.waitForSelector('#status[data-state="open"]')
  await say(page, 'after')
  await page.waitForSelector('.msg.bot:has-text("You said: after")')
  await messageCount(page, 6)
  const shown = await keys(page)
  t.equal(new Set(shown).size, 6, `each message once: ${shown.join(', ')}`)
  // What Chromium logs of the network (a refused upgrade, a cut stream) is not an error of the page.
  t.same(errors.filter((e) => !NETWORK_LOG.test(e)), [])
}

const NETWORK_LOG = /^Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING$|^WebSocket connection to .* failed/

t.test('a page without WebSocket chats over HTTP, gets agent replies pushed, and resumes after its stream is cut', { skip }, async (t) => {
  const h = await startDemo(t)
  let upgrades = 0
  h.app.server.on('upgrade', () => { upgrades++ })
  const browser = await launchBrowser(t)
  const context = await browser.newContext()
  // As a runtime with no WebSocket at all, before any script of the page runs.
  await context.addInitScript(() => { delete (window as { WebSocket?: unknown }).WebSocket })
  const { page, errors, clientId } = await newChatPage(h, context)
  await chatOverHttp(t, h, page, clientId, errors, () => { t.equal(cutSockets(h.app), 1, 'one stream cut at the bridge') })
  t.equal(upgrades, 0, 'no upgrade was ever tried')
})

t.test('behind a proxy that refuses upgrades, the page falls back to HTTP and keeps to it', { skip }, async (t) => {
  const h = await startDemo(t)
  const proxy = await startHttpProxy(t, [h.httpUrl], 'refuse')
  const browser = await launchBrowser(t)
  const { page, errors, clientId } = await newChatPage({ ...h, httpUrl: proxy.via(h.httpUrl) }, browser)
  t.equal(proxy.upgrades, 1, 'one upgrade tried, and refused')
  await chatOverHttp(t, h, page, clientId, errors, () => { proxy.dropAll() })
  t.equal(proxy.upgrades, 1, 'the reconnect went straight to HTTP, as remembered')
})

t.test('two instances with Redis behind a round-robin proxy that refuses upgrades: no stickiness needed', { skip: skip || redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator, undefined, { DEMO_PAGE: 'true', METRICS: 'false' }), 2)
  const proxy = await startHttpProxy(t, instances.map((i) => i.http), 'refuse')
  const h = { emulator, httpUrl: proxy.via(instances[0]?.http as string) } as unknown as DemoHarness
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => { errors.push(err.message) })
  await page.goto(`${h.httpUrl}/`)
  await page.waitForSelector('#status[data-state="open"]')
  const clientId = (await page.textContent('#client-id')) ?? ''
  await pollsHeld(emulator, { clientId }, 1)
  const before = proxy.requests
  await chatOverHttp(t, h, page, clientId, errors, () => { proxy.dropAll() })
  t.ok(proxy.requests - before >= 4, `${proxy.requests - before} requests, alternating between the two instances`)
})
