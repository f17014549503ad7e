import t from 'tap'
import { mkdirSync } from 'node:fs'
import { TOKEN, until } from '../fixtures/bridge.js'
import { browserSkip, keys, launchBrowser, newChatPage, openChat, say, startDemo } from '../fixtures/browser.js'

const skip = browserSkip()

t.test('a conversation in two tabs of one visitor', { skip }, async (t) => {
  const h = await startDemo(t)
  const browser = await launchBrowser(t)
  const context = await browser.newContext()
  const { page: tab1, errors, clientId } = await newChatPage(h, context)
  t.match(clientId, /^[0-9a-f-]{36}$/, 'the page shows the visitor id')
  const { page: tab2, errors: errors2, clientId: clientId2 } = await newChatPage(h, context, 2)
  t.equal(clientId2, clientId, 'the second tab is the same visitor (the ticket is in localStorage)')
  const cids = await Promise.all([tab1, tab2].map(async (p) => await p.evaluate(() => sessionStorage.getItem('chatapi-bridge-demo:cid'))))
  t.not(cids[0], cids[1], 'each tab is its own connection')

  await say(tab1, 'hello <i>world</i>')
  await tab1.waitForSelector('.msg.bot .text b')
  t.equal(await tab1.textContent('.msg.me .text'), 'hello <i>world</i>', 'the visitor\'s text is text')
  t.equal(await tab1.textContent('.msg.bot .text b'), 'hello <i>world</i>', 'the markup is rendered, its escaped text stays text')
  t.equal(await tab1.$$eval('.msg.bot i', (els) => els.length), 0)
  t.equal(await tab1.inputValue('#input'), '', 'the input is cleared')
  t.ok(await tab1.evaluate(() => document.activeElement?.id === 'input'), 'and keeps the focus')

  await tab2.waitForSelector('.msg.bot .text b')
  t.equal(await tab2.textContent('.msg.me .text'), 'hello <i>world</i>', 'the other tab shows the visitor\'s message')
  t.same(await keys(tab2), await keys(tab1), 'both tabs show the same conversation')
  t.equal((await keys(tab1)).length, 2)

  // Buttons send their text; link buttons open a new tab; images show inline.
  await say(tab2, 'buttons')
  await tab2.click('.msg.bot .choices button:has-text("Yes")')
  await tab1.waitForSelector('.msg.bot .text:has-text("You said: Yes")')
  await say(tab1, 'link')
  const link = await tab1.waitForSelector('.msg.bot a.chip.link')
  t.equal(await link.getAttribute('href'), 'https://example.com/')
  t.equal(await link.getAttribute('target'), '_blank')
  t.match(await link.getAttribute('rel'), /noopener/)
  await say(tab1, 'image')
  const img = await tab1.waitForSelector('.msg.bot figure.image img')
  t.match(await img.getAttribute('src'), /^data:image\/svg\+xml;base64,/)
  t.equal(await img.getAttribute('alt'), 'A small blue square')
  await tab2.waitForSelector('.msg.bot figure.image img')
  t.same(await keys(tab2), await keys(tab1), 'still the same conversation')
  t.equal(new Set(await keys(tab1)).size, 10, 'five questions, five answers, each once')

  // Shown answers are marked READ, so nothing is unread.
  await until(() => h.emulator.requests.some((r) => r.route === 'setStatuses'), 5000, 'read receipts')
  await tab1.waitForFunction(() => document.querySelector('#unread')?.hasAttribute('hidden') === true)
  t.same([...errors, ...errors2], [], 'no errors in either page')
})

t.test('bot markup is sanitised: only a few inline tags, links to http(s) only', { skip }, async (t) => {
  const h = await startDemo(t)
  const browser = await launchBrowser(t)
  const { page, errors, clientId } = await newChatPage(h, browser)
  h.emulator.publish(TOKEN, clientId, 'botResponse', {
    questionId: 'evil-1',
    data: {
      replies: [{
        type: 'text',
        text: 'plain',
        markup: '<b>bold</b> <img src=x onerror="window.pwned=1"><script>window.pwned=2</script>' +
          '<a href="javascript:window.pwned=3">js link</a> <a href="https://example.com/x" onclick="window.pwned=4">ok link</a>' +
          '<div style="color:red" onmouseover="window.pwned=5">div text</div><br><u>u</u><style>body{display:none}</style>'
      }]
    }
  })
  const msg = await page.waitForSelector('.msg.bot[data-key="a:evil-1"]')
  t.equal(await msg.$eval('.text', (el) => el.innerHTML),
    '<b>bold</b> js link <a href="https://example.com/x" target="_blank" rel="noopener noreferrer">ok link</a>div text<br><u>u</u>')
  t.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'nothing ran')
  // Parsing the markup, inert as it is, still meets the page's policy, which reports each handler and style it refuses.
  t.same(errors.filter((e) => !/violates the following Content Security Policy/.test(e)), [], 'no other error')
  t.ok(errors.length > 0, 'the policy refused the handlers too')
})

t.test('screenshots of a full conversation, wide and narrow', { skip }, async (t) => {
  const h = await startDemo(t)
  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 1000, height: 820 } })
  mkdirSync('test-output', { recursive: true })
  const clientId = await openChat(h, page)
  await page.screenshot({ path: 'test-output/demo-empty.png', animations: 'disabled' })
  for (const [i, text] of ['hello', 'buttons', 'link', 'image'].entries()) {
    await say(page, text)
    await page.waitForFunction((n) => document.querySelectorAll('#log .msg.bot').length === n, i + 1)
  }
  await say(page, 'agent')
  await page.waitForSelector('.msg.agent')
  h.emulator.agentReply(TOKEN, clientId, 'I can see your order. It ships tomorrow.')
  await page.waitForSelector('.msg.agent:has-text("It ships")')
  await page.fill('#input', 'Thank you!')
  await page.screenshot({ path: 'test-output/demo-chat.png', animations: 'disabled' })
  await page.setViewportSize({ width: 390, height: 760 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await page.screenshot({ path: 'test-output/demo-chat-narrow-dark.png', animations: 'disabled' })
  t.pass('saved in test-output/')
})
