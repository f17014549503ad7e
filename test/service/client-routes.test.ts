import t from 'tap'
import { startDemo } from '../fixtures/browser.js'

t.test('the SDK is served for browsers, and nothing else from disk', async (t) => {
  const h = await startDemo(t, { demoPage: false })
  const sdk = await fetch(`${h.httpUrl}/sdk/index.js`)
  t.equal(sdk.status, 200)
  t.equal(sdk.headers.get('content-type'), 'text/javascript; charset=utf-8')
  t.equal(sdk.headers.get('x-content-type-options'), 'nosniff')
  t.equal(sdk.headers.get('access-control-allow-origin'), '*', 'a page of another origin may import it as a module')
  const body = await sdk.text()
  t.match(body, /export \{ BridgeClient \} from '\.\/bridge-client\.js'/, 'the ESM build, with relative imports the browser resolves under /sdk/')
  // Every module the entry reaches, as a browser would load them: each is served, none needs Node.
  const seen = new Set(['index.js'])
  const queue = [body]
  for (let text = queue.pop(); text !== undefined; text = queue.pop()) {
    t.notMatch(text, /from ['"]node:|require\(/, 'nothing from Node')
    for (const [, name] of text.matchAll(/from '\.\/([a-z-]+\.js)'/g)) {
      if (name === undefined || seen.has(name)) continue
      seen.add(name)
      const res = await fetch(`${h.httpUrl}/sdk/${name}`)
      t.equal(res.status, 200, `/sdk/${name}`)
      queue.push(await res.text())
    }
  }
  for (const name of ['bridge-client.js', 'emitter.js', 'storage.js']) t.ok(seen.has(name), `${name} is among them`)

  for (const path of [
    '/sdk/..%2Fapp.js', '/sdk/..%2F..%2Fpackage.json', '/sdk/%2e%2e%2fserver.js', '/sdk/index.d.ts',
    '/sdk/../app.js', '/sdk/nope.js', '/sdk/', '/sdk/Index.js'
  ]) {
    const res = await fetch(h.httpUrl + path)
    t.equal(res.status, 404, `${path} is refused`)
    await res.arrayBuffer()
  }
  t.equal((await fetch(`${h.httpUrl}/`)).status, 404, 'no page at / when DEMO_PAGE is off')
  t.equal((await fetch(`${h.httpUrl}/demo/app.js`)).status, 404, 'nor its assets')
})

t.test('with DEMO_PAGE on, the page and its assets are served with a strict policy', async (t) => {
  const h = await startDemo(t)
  const page = await fetch(`${h.httpUrl}/`)
  t.equal(page.status, 200)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  const policy = page.headers.get('content-security-policy') ?? ''
  t.match(policy, /default-src 'none'/)
  t.match(policy, /script-src 'self'/)
  t.match(policy, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:\\d+ wss://`))
  const html = await page.text()
  t.match(html, /<script type="module" src="demo\/app\.js"><\/script>/)
  t.notMatch(html, /https?:\/\/(?!www\.w3\.org)/, 'nothing fetched from elsewhere')

  const css = await fetch(`${h.httpUrl}/demo/style.css`)
  t.equal(css.headers.get('content-type'), 'text/css; charset=utf-8')
  t.notMatch(await css.text(), /@import|url\(/, 'no fonts or images from elsewhere')
  const js = await fetch(`${h.httpUrl}/demo/app.js`)
  t.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8')
  t.match(await js.text(), /from '\.\.\/sdk\/index\.js'/, 'the page uses the SDK the bridge serves')
  for (const path of ['/demo/index.html', '/demo/..%2F..%2Fpackage.json', '/demo/missing.css']) {
    const res = await fetch(h.httpUrl + path)
    t.equal(res.status, 404, `${path} is refused`)
    await res.arrayBuffer()
  }

  // fetch() sets Host itself, so this one goes through inject().
  const odd = await h.app.inject({ url: '/', headers: { host: 'evil; script-src *' } })
  t.equal(odd.statusCode, 200)
  t.notMatch(String(odd.headers['content-security-policy']), /evil/, 'a strange Host header stays out of the policy')
})
