import t from 'tap'
import { SignJWT, generateKeyPair, exportSPKI } from 'jose'
import { startBridge } from '../fixtures/bridge.js'

t.test('ticket mode: a first hello makes a client, its ticket brings it back', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  t.type(a.welcome.clientId, 'string')
  t.type(a.welcome.ticket, 'string')
  t.equal(a.welcome.resumed, false)
  t.equal(a.ws.protocol, 'chatapi-bridge.v1', 'the server selects the subprotocol')

  const b = await h.client({ auth: a.welcome.ticket })
  t.equal(b.welcome.clientId, a.welcome.clientId, 'same client with its ticket')

  const other = await h.client()
  t.not(other.welcome.clientId, a.welcome.clientId, 'a new visitor is a new client')
})

t.test('ticket mode: forged, altered and malformed tickets close with 4401', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  const ticket = a.welcome.ticket as string
  const [v, payload, mac] = ticket.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { c: string, e: number }
  const altered = `${v}.${Buffer.from(JSON.stringify({ ...claims, c: 'someone-else' })).toString('base64url')}.${mac}`
  const forged = `${v}.${payload}.${'A'.repeat(mac.length)}`
  for (const auth of [altered, forged, 'not-a-ticket', `${ticket}x`]) {
    const c = await h.connect()
    c.send({ type: 'hello', auth })
    t.equal(await c.closed(), 4401, `closed 4401 for ${auth.slice(0, 20)}…`)
    t.notOk(c.frames.some((f) => f.type === 'welcome'), 'no welcome')
  }
  // The server keeps serving: the genuine ticket still works.
  const again = await h.client({ auth: ticket })
  t.equal(again.welcome.clientId, a.welcome.clientId)
})

t.test('a ticket signed by another secret is refused', async (t) => {
  const one = await startBridge(t, { TICKET_SECRET: 'first-secret-0123456789abcdef' })
  const two = await startBridge(t, { TICKET_SECRET: 'second-secret-0123456789abcdef' })
  const a = await one.client()
  const c = await two.connect()
  c.send({ type: 'hello', auth: a.welcome.ticket })
  t.equal(await c.closed(), 4401)
})

t.test('jwt mode with an HMAC secret', async (t) => {
  const secret = 'jwt-secret-for-tests-0123456789'
  const h = await startBridge(t, { AUTH_MODE: 'jwt', JWT_SECRET: secret })
  const key = new TextEncoder().encode(secret)
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-7').setExpirationTime('5m').sign(key)
  const a = await h.client({ auth: good })
  t.equal(a.welcome.clientId, 'user-7', 'clientId is the sub')
  t.equal(a.welcome.ticket, undefined, 'no ticket in jwt mode')

  const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-7').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key)
  const wrongKey = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-7').setExpirationTime('5m').sign(new TextEncoder().encode('another-secret-0123456789abcdef'))
  const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-7').sign(key)
  const [hd, body, sig] = good.split('.') as [string, string, string]
  const altered = `${hd}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()) as object, sub: 'user-8' })).toString('base64url')}.${sig}`
  for (const [name, auth] of [['expired', expired], ['wrong key', wrongKey], ['no exp', noExp], ['altered', altered], ['missing', undefined]] as const) {
    const c = await h.connect()
    c.send(auth === undefined ? { type: 'hello' } : { type: 'hello', auth })
    t.equal(await c.closed(), 4401, `${name} JWT closes with 4401`)
  }
})

t.test('jwt mode with a public key', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const pem = await exportSPKI(publicKey)
  const h = await startBridge(t, { AUTH_MODE: 'jwt', JWT_PUBLIC_KEY: pem, JWT_ISSUER: 'https://shop.example' })
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('shopper-1').setIssuer('https://shop.example').setExpirationTime('5m').sign(privateKey)
  const a = await h.client({ auth: good })
  t.equal(a.welcome.clientId, 'shopper-1')
  const wrongIssuer = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('shopper-1').setIssuer('https://evil.example').setExpirationTime('5m').sign(privateKey)
  const c = await h.connect()
  c.send({ type: 'hello', auth: wrongIssuer })
  t.equal(await c.closed(), 4401, 'wrong issuer closes with 4401')
})

t.test('origin allow-list', async (t) => {
  const h = await startBridge(t, { ALLOWED_ORIGINS: 'https://shop.example, https://www.shop.example' })
  const bad = await h.connect({ origin: 'https://evil.example' })
  t.equal(await bad.closed(), 4403)
  const good = await h.connect({ origin: 'https://www.shop.example' })
  const w = await good.hello()
  t.equal(w.type, 'welcome')
})

t.test('no hello in time closes with 4408', async (t) => {
  const h = await startBridge(t, { HELLO_TIMEOUT_MS: '200' })
  const c = await h.connect()
  t.equal(await c.closed(), 4408)
})
