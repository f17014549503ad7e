import { AuthError, type Authenticator } from './auth.js'
import { ErrorCode } from './errors.js'
import type { AuthResult } from './protocol.js'

/** What an `auth` frame comes to: the socket's new expiry and the result to send, or why the credential is refused. */
export type Refresh =
  | { ok: true, result: AuthResult }
  | { ok: false, code: typeof ErrorCode.BAD_CREDENTIAL, message: string }

/**
 * Checks the fresh credential of an open socket, by the same rules as a
 * hello's (the authenticator is the one path for both), and that it names
 * the socket's own client: a socket never changes whose it is, since its
 * feed, its sends and its cursors belong to that client.
 */
export async function refreshCredential (auth: Authenticator, clientId: string, credential: string): Promise<Refresh> {
  let identity
  try {
    identity = await auth.authenticate(credential)
  } catch (err) {
    if (err instanceof AuthError) return { ok: false, code: ErrorCode.BAD_CREDENTIAL, message: err.message }
    throw err
  }
  // The other client is not named back: the message goes to whoever holds the socket.
  if (identity.clientId !== clientId) return { ok: false, code: ErrorCode.BAD_CREDENTIAL, message: 'the credential is for another client than this socket\'s' }
  const result: AuthResult = { expiresAt: identity.expiresAt }
  if (identity.ticket !== undefined) result.ticket = identity.ticket
  return { ok: true, result }
}
