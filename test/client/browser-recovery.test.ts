import t from 'tap'
import type { Page } from 'playwright-core'
import { TOKEN } from '../fixtures/bridge.js'
import { browserSkip, cutSockets, keys, launchBrowser, newChatPage, pageErrors, say, startDemo } from '../fixtures/browser.js'

const skip = browserSkip()

async function messageCount (page: Page, n: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('#log .msg[data-key]').length === n, n)
}

t.test('the socket is cut: the page reconnects, resends, resumes, and shows each message once', { skip }, async (t) => {
  const h = await startDemo(t)
  let upgrades = 0
  h.app.server.on('upgrade', () => { upgrades++ })
  const browser = await launchBrowser(t)
  const { page, errors, clientId } = await newChatPage(h, browser)
  await say(page, 'hello')
  await messageCount(page, 2)
  // Every state the status line goes through, recorded in the page.
  await page.evaluate(() => {
    const states: string[] = []
    ;(window as unknown as { states: string[] }).states = states
    const status = document.querySelector('#status') as HTMLElement
    new MutationObserver(() => { states.push(status.dataset.state ?? '') }).observe(status, { attributes: true, attributeFilter: ['data-state'] })
  })

  // A message on its way upstream when the line goes down.
  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 300 })
  const upstreamGotIt = new Promise<void>((resolve) => { h.emulator.on('request', (r) => { if (r.route === 'send') resolve() }) })
  await say(page, 'in flight')
  await upstreamGotIt
  t.equal(cutSockets(h.app), 1)
  h.emulator.agentReply(TOKEN, clientId, 'while the line was down')

  await page.waitForSelector('.msg.agent:has-text("while the line was down")')
  await page.waitForSelector('.msg.bot:has-text("You said: in flight")')
  await page.waitForSelector('#status[data-state="open"]')
  t.same(await page.evaluate(() => (window as unknown as { states: string[] }).states), ['reconnecting', 'open'])
  await messageCount(page, 5)
  t.equal(h.emulator.requests.filter((r) => r.route === 'send').length, 2, 'the message in flight reached the bot once')

  await say(page, 'after')
  await messageCount(page, 7)
  const shown = await keys(page)
  t.equal(new Set(shown).size, 7, 'nothing twice')
  t.equal(await page.textContent('#log .msg:last-child .text'), 'You said: after')
  t.equal(upgrades, 2, 'one reconnect')
  t.same(errors, [])
})

t.test('a reload and a new tab show the conversation from the history', { skip }, async (t) => {
  const h = await startDemo(t)
  const browser = await launchBrowser(t)
  const context = await browser.newContext()
  const { page, errors, clientId } = await newChatPage(h, context)
  await say(page, 'first')
  await messageCount(page, 2)
  await say(page, 'agent')
  // The bot hands over, and the emulator's agent answers on its own.
  await page.waitForSelector('.msg.agent:has-text("live agent")')
  h.emulator.agentReply(TOKEN, clientId, 'Anything else?')
  await page.waitForSelector('.msg.agent:has-text("Anything else?")')
  await messageCount(page, 6)
  const before = await keys(page)

  await page.reload()
  await page.waitForSelector('#status[data-state="open"]')
  await messageCount(page, 6)
  t.same(await keys(page), before, 'the reloaded page shows the same conversation, in the same order')
  t.equal(await page.$$eval('.msg.agent', (els) => els.length), 2, 'the agent\'s messages are shown as the agent\'s')

  const tab = await context.newPage()
  await tab.goto(`${h.httpUrl}/`)
  await tab.waitForSelector('#status[data-state="open"]')
  await messageCount(tab, 6)
  t.same(await keys(tab), before, 'and so does a new tab')
  t.same(errors, [])
})

t.test('a refused ticket: the page starts over as a new visitor by itself, never offline', { skip }, async (t) => {
  const h = await startDemo(t)
  const browser = await launchBrowser(t)
  const context = await browser.newContext()
  await context.addInitScript(() => {
    // A ticket this bridge never signed, as after a change of TICKET_SECRET; and a record of every state shown.
    const states: string[] = []
    ;(window as unknown as { states: string[] }).states = states
    new MutationObserver(() => {
      const state = document.querySelector<HTMLElement>('#status')?.dataset.state
      if (state !== undefined && states.at(-1) !== state) states.push(state)
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] })
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i)
      if (key?.endsWith(':ticket') === true) return
    }
    localStorage.setItem(`chatapi-bridge:ws://${location.host}/v1/ws#:ticket`, 't1.forged.ticket')
  })
  const page = await context.newPage()
  const errors = pageErrors(page)
  await page.goto(`${h.httpUrl}/`)
  await page.waitForSelector('#status[data-state="open"]')
  t.match(await page.textContent('#client-id'), /^[0-9a-f-]{36}$/)
  t.notOk((await page.evaluate(() => (window as unknown as { states: string[] }).states)).includes('closed'), 'never offline')
  t.ok(await page.isHidden('#retry'))
  const tickets = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.endsWith(':ticket')).map((k) => localStorage.getItem(k)))
  t.equal(tickets.length, 1)
  t.not(tickets[0], 't1.forged.ticket', 'the new visitor\'s ticket replaced the refused one')
  t.same(errors, [])
})

t.test('with the webhook wired up: the bot speaking up after a timeout, a campaign, and an agent reply shown once', { skip }, async (t) => {
  const h = await startDemo(t, { webhook: true })
  const browser = await launchBrowser(t)
  const { page, errors, clientId } = await newChatPage(h, browser)
  await say(page, 'timeout 0.2')
  await page.waitForSelector('.msg.bot .notice:has-text("waits 0.2 s")')
  await page.waitForSelector('.msg.bot:has-text("Are you still there?")')
  h.emulator.campaign(TOKEN, [clientId], 'Spring sale: 20% off')
  await page.waitForSelector('.msg.bot:has-text("Spring sale")')
  // The platform sends an agent's reply both to the webhook and to /events.
  h.emulator.agentReply(TOKEN, clientId, 'Hello from a person')
  await page.waitForSelector('.msg.agent:has-text("Hello from a person")')
  await say(page, 'thanks')
  await messageCount(page, 7)
  t.equal(await page.$$eval('.msg.agent', (els) => els.length), 1, 'the agent\'s reply once, shown as the agent\'s')
  t.equal(new Set(await keys(page)).size, 7)
  t.same(errors, [])
})
