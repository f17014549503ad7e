import { createHmac, createPublicKey, hkdfSync, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto'
import { jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose'
import { isDotSegment } from '../upstream/json.js'

/** A key of its own for each use of TICKET_SECRET (tickets, cursors), so one can never be passed off as the other. */
export function deriveKey (secret: Buffer, purpose: 'ticket' | 'cursor'): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `chatapi-bridge ${purpose} v1`, 32))
}

export interface Identity {
  clientId: string
  ticket?: string
  /**
   * Epoch ms at which the credential the client now holds expires: the JWT's
   * `exp`, or that of the ticket just issued. The socket is closed then,
   * unless a fresh credential comes first.
   */
  expiresAt: number
  /** A client made just now (an anonymous visitor's first hello): new clients are paced per source address. */
  fresh?: true
}

/** A credential was missing, malformed, forged or expired: the socket closes with 4401. */
export class AuthError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AuthError'
  }
}

export interface Authenticator {
  readonly mode: 'ticket' | 'jwt'
  authenticate: (auth: string | undefined) => Promise<Identity>
}

const CLIENT_ID = /^[A-Za-z0-9._:@~-]{1,128}$/

/** A clientId goes into upstream paths, where `.` and `..` would be read as steps rather than a name. */
function usableClientId (value: unknown): value is string {
  return typeof value === 'string' && CLIENT_ID.test(value) && !isDotSegment(value)
}

/** How far an issuer's clock may run ahead of ours: a JWT made just now by a slightly fast clock still passes. */
const CLOCK_SKEW_S = 30

/**
 * Ticket mode: anonymous visitors. A first hello without `auth` makes a new
 * clientId; the welcome carries a ticket, `t1.<payload>.<mac>`, signed with
 * HMAC-SHA256, that names the client and expires after a lifetime.
 */
export class TicketAuth implements Authenticator {
  readonly mode = 'ticket'
  private readonly key: Buffer
  private readonly ttlS: number
  private readonly now: () => number

  constructor (key: Buffer, ttlS: number, now: () => number = Date.now) {
    this.key = key
    this.ttlS = ttlS
    this.now = now
  }

  issue (clientId: string): string {
    return this.sign(clientId).ticket
  }

  async authenticate (auth: string | undefined): Promise<Identity> {
    if (auth === undefined) {
      const clientId = randomUUID()
      return { clientId, ...this.sign(clientId), fresh: true }
    }
    const clientId = this.verify(auth)
    // A ticket near the end of its life is renewed, so an active visitor keeps their identity.
    return { clientId, ...this.sign(clientId) }
  }

  private sign (clientId: string): { ticket: string, expiresAt: number } {
    const e = Math.floor(this.now() / 1000) + this.ttlS
    const payload = Buffer.from(JSON.stringify({ c: clientId, e })).toString('base64url')
    return { ticket: `t1.${payload}.${this.mac(payload)}`, expiresAt: e * 1000 }
  }

  private verify (ticket: string): string {
    const parts = ticket.split('.')
    if (parts.length !== 3 || parts[0] !== 't1') throw new AuthError('malformed ticket')
    const [, payload, mac] = parts as [string, string, string]
    const want = Buffer.from(this.mac(payload))
    const got = Buffer.from(mac)
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw new AuthError('ticket signature is not valid')
    let body: unknown
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      throw new AuthError('malformed ticket')
    }
    const { c, e } = (body ?? {}) as { c?: unknown, e?: unknown }
    if (!usableClientId(c) || typeof e !== 'number') throw new AuthError('malformed ticket')
    if (e * 1000 <= this.now()) throw new AuthError('ticket expired')
    return c
  }

  private mac (payload: string): string {
    return createHmac('sha256', this.key).update(`t1.${payload}`).digest('base64url')
  }
}

export interface JwtSettings {
  secret?: string | undefined
  publicKey?: string | undefined
  issuer?: string | undefined
  audience?: string | undefined
  /** JWT_MAX_AGE_S: the longest lifetime a JWT may claim, in seconds. */
  maxAgeS: number
}

/**
 * JWT mode: the host application signs in its users; `sub` is the clientId
 * and `exp` is required. A JWT may live at most `maxAgeS`: a leaked one that
 * claims to live for years would otherwise be a credential for years.
 */
export class JwtAuth implements Authenticator {
  readonly mode = 'jwt'
  private readonly key: Uint8Array | KeyObject
  private readonly verifyOptions: JWTVerifyOptions
  private readonly maxAgeS: number
  private readonly now: () => number

  constructor (s: JwtSettings, now: () => number = Date.now) {
    this.maxAgeS = s.maxAgeS
    this.now = now
    if (s.secret !== undefined) {
      this.key = new TextEncoder().encode(s.secret)
      this.verifyOptions = { algorithms: ['HS256', 'HS384', 'HS512'] }
    } else if (s.publicKey !== undefined) {
      this.key = createPublicKey(s.publicKey.replaceAll('\\n', '\n'))
      this.verifyOptions = { algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] }
    } else {
      throw new Error('JWT mode needs a secret or a public key')
    }
    this.verifyOptions.requiredClaims = ['exp', 'sub']
    if (s.issuer !== undefined) this.verifyOptions.issuer = s.issuer
    if (s.audience !== undefined) this.verifyOptions.audience = s.audience
  }

  async authenticate (auth: string | undefined): Promise<Identity> {
    if (auth === undefined) throw new AuthError('a JWT is required')
    const nowMs = this.now()
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(auth, this.key, { ...this.verifyOptions, currentDate: new Date(nowMs) }))
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'JWT expired' : 'JWT is not valid')
    }
    const problem = this.lifetimeProblem(payload, Math.floor(nowMs / 1000))
    if (problem !== undefined) throw new AuthError(problem)
    if (!usableClientId(payload.sub)) throw new AuthError('JWT sub is not a usable clientId')
    // exp is a required claim, a number by jose's check.
    return { clientId: payload.sub, expiresAt: (payload.exp as number) * 1000 }
  }

  /**
   * jose's maxTokenAge is not used: it bounds the time since `iat` and makes
   * `iat` required, where the bound here is on the lifetime and holds
   * without `iat` too, from now to `exp`.
   */
  private lifetimeProblem (payload: JWTPayload, nowS: number): string | undefined {
    // exp is a required claim that jose has checked to be a number.
    const exp = payload.exp ?? Number.POSITIVE_INFINITY
    if (exp - nowS > this.maxAgeS + CLOCK_SKEW_S) return 'JWT lives longer than JWT_MAX_AGE_S allows'
    const iat = payload.iat
    if (iat === undefined) return undefined
    if (iat > nowS + CLOCK_SKEW_S) return 'JWT iat is in the future'
    // Both ends come from the issuer's clock, so no skew is allowed for here.
    if (exp - iat > this.maxAgeS) return 'JWT lives longer than JWT_MAX_AGE_S allows'
    return undefined
  }
}
