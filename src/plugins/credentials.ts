import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import { JwtAuth, TicketAuth, deriveKey, type Authenticator } from '../socket/auth.js'
import { CursorCodec } from '../feed/cursor.js'

export interface Credentials {
  /** Checks the ticket or JWT of a hello. */
  auth: Authenticator
  /** Signs and reads resume cursors. */
  cursors: CursorCodec
}

/** The keys behind tickets and cursors, both derived from TICKET_SECRET (or a random one). */
export function buildCredentials (config: Config, log: FastifyBaseLogger): Credentials {
  let secret: Buffer
  if (config.TICKET_SECRET !== undefined) {
    secret = Buffer.from(config.TICKET_SECRET)
  } else {
    secret = randomBytes(32)
    log.warn('TICKET_SECRET is not set: a random secret is used, so tickets and cursors will not survive a restart')
  }
  const auth: Authenticator = config.AUTH_MODE === 'jwt'
    ? new JwtAuth({ secret: config.JWT_SECRET, publicKey: config.JWT_PUBLIC_KEY, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, maxAgeS: config.JWT_MAX_AGE_S })
    : new TicketAuth(deriveKey(secret, 'ticket'), config.TICKET_TTL_S)
  return { auth, cursors: new CursorCodec(deriveKey(secret, 'cursor')) }
}
