import t, { type Test } from 'tap'
import { SignJWT, type JWTPayload } from 'jose'
import { startBridge, type Harness } from '../fixtures/bridge.js'
import { AuthError, JwtAuth } from '../../dist/socket/auth.js'
import type { RequestRecord } from '../../dist/emulator/request-log.js'

const SECRET = 'jwt-secret-for-tests-0123456789'
const KEY = new TextEncoder().encode(SECRET)
const MAX_AGE_S = 120

const nowS = (): number => Math.floor(Date.now() / 1000)

async function jwt (claims: JWTPayload): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(KEY)
}

async function jwtBridge (t: Test): Promise<Harness> {
  return await startBridge(t, { AUTH_MODE: 'jwt', JWT_SECRET: SECRET, JWT_MAX_AGE_S: String(MAX_AGE_S) })
}

/** The close code of a socket that said hello with `auth`, or 'welcome' when it was let in. */
async function helloOutcome (h: Harness, auth: string): Promise<number | 'welcome'> {
  const c = await h.connect()
  c.send({ type: 'hello', auth })
  const outcome = await new Promise<number | 'welcome'>((resolve) => {
    c.ws.on('message', (data) => { if ((JSON.parse(data.toString()) as { type?: unknown }).type === 'welcome') resolve('welcome') })
    c.ws.on('close', (code) => { resolve(code) })
  })
  c.ws.terminate()
  return outcome
}

/** A segment that a normalising proxy would read as a step: `.`, `..`, or their percent-encoded forms. */
function hasDotSegment (r: RequestRecord): boolean {
  return r.path.split('/').some((s) => /^(?:\.|%2e){1,2}$/i.test(s))
}

t.test('a JWT whose sub is "." or ".." is refused and never reaches an upstream path', async (t) => {
  const h = await jwtBridge(t)
  for (const sub of ['..', '.']) {
    t.equal(await helloOutcome(h, await jwt({ sub, exp: nowS() + 60 })), 4401, `sub ${JSON.stringify(sub)} closes with 4401`)
  }
  // A sub with dots that is still a name is let in, and its calls reach the upstream.
  const ok = await h.client({ auth: await jwt({ sub: '..a', exp: nowS() + 60 }) })
  t.equal(ok.welcome.clientId, '..a')
  t.equal((await ok.request({ type: 'getState', id: 's' })).ok, true)
  t.ok(h.emulator.requests.some((r) => r.route === 'getState' && r.path.endsWith('/client/..a/state')), 'the request log sees the calls')
  t.notOk(h.emulator.requests.some(hasDotSegment), 'no upstream path has a dot segment')
  t.notOk(h.emulator.requests.some((r) => r.clientId === '.' || r.clientId === '..'), 'no upstream call names such a client')
})

t.test('a request whose questionId is "." or ".." is refused before the upstream', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  for (const [type, questionId] of [['getStatus', '..'], ['getStatus', '.'], ['setStatus', '..'], ['setStatus', '.']] as const) {
    const r = await a.request({ type, id: `${type}-${questionId}`, questionId, status: 'READ' })
    t.equal(r.ok, false)
    t.match(r.error, { code: 'BAD_REQUEST', message: new RegExp(`^${type}: questionId `) }, `${type} of ${JSON.stringify(questionId)} names the field`)
  }
  t.notOk(h.emulator.requests.some((r) => r.route === 'getStatus' || r.route === 'setStatus'), 'no status call reached the upstream')
  // A questionId that only starts with dots goes up as usual (the emulator knows no such message).
  const r = await a.request({ type: 'getStatus', id: 'dots-a', questionId: '..a' })
  t.match(r.error, { code: 'UPSTREAM_REJECTED', status: 404 })
  t.ok(h.emulator.requests.some((r) => r.route === 'getStatus' && r.path.endsWith('/message/..a/status')))
  t.notOk(h.emulator.requests.some(hasDotSegment), 'no upstream path has a dot segment')
})

t.test('JWT_MAX_AGE_S bounds the lifetime a JWT claims', async (t) => {
  const h = await jwtBridge(t)
  const now = nowS()
  const refused: Array<[string, JWTPayload]> = [
    ['exp an hour past the bound', { sub: 'u', exp: now + MAX_AGE_S + 3600 }],
    ['exp in milliseconds', { sub: 'u', exp: 9999999999999 }],
    ['exp - iat over the bound, iat now', { sub: 'u', iat: now, exp: now + MAX_AGE_S + 20 }],
    ['exp - iat over the bound, exp near', { sub: 'u', iat: now - 100, exp: now + 100 }],
    ['iat in the future', { sub: 'u', iat: now + 600, exp: now + 100 }]
  ]
  for (const [name, claims] of refused) t.equal(await helloOutcome(h, await jwt(claims)), 4401, `${name}: 4401`)
  const welcomed: Array<[string, JWTPayload]> = [
    ['exp within the bound, no iat', { sub: 'u', exp: now + 100 }],
    ['exp - iat exactly the bound', { sub: 'u', iat: now, exp: now + MAX_AGE_S }],
    ['issued a while ago, within the bound', { sub: 'u', iat: now - 60, exp: now + 60 }]
  ]
  for (const [name, claims] of welcomed) t.equal(await helloOutcome(h, await jwt(claims)), 'welcome', `${name}: welcomed`)
})

t.test('the reasons JwtAuth gives', async (t) => {
  const now = 1_800_000_000
  const auth = new JwtAuth({ secret: SECRET, maxAgeS: MAX_AGE_S }, () => now * 1000)
  const reason = async (claims: JWTPayload): Promise<string> => {
    try {
      await auth.authenticate(await jwt(claims))
      return 'accepted'
    } catch (err) {
      t.type(err, AuthError)
      return (err as Error).message
    }
  }
  t.equal(await reason({ sub: '..', exp: now + 60 }), 'JWT sub is not a usable clientId')
  t.equal(await reason({ sub: '.', exp: now + 60 }), 'JWT sub is not a usable clientId')
  t.equal(await reason({ sub: 'u', exp: now + MAX_AGE_S + 3600 }), 'JWT lives longer than JWT_MAX_AGE_S allows')
  t.equal(await reason({ sub: 'u', iat: now, exp: now + MAX_AGE_S + 1 }), 'JWT lives longer than JWT_MAX_AGE_S allows')
  t.equal(await reason({ sub: 'u', iat: now + 600, exp: now + 60 }), 'JWT iat is in the future')
  t.equal(await reason({ sub: 'u', exp: now - 1 }), 'JWT expired')
  // A clock a few seconds fast at the issuer is allowed for.
  t.equal(await reason({ sub: 'u', iat: now + 5, exp: now + 5 + MAX_AGE_S }), 'accepted')
})
