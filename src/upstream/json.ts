import { BridgeError, ErrorCode } from '../socket/errors.js'

const REDACTED = '[redacted]'

/**
 * Segments that are no name: empty, `.` and `..`, also as the `%2e` that
 * URL parsers read as a dot. A normalising proxy would drop them or step up
 * a level, and the call would reach another path.
 */
const NOT_A_NAME = /^(?:\.|%2e){0,2}$/i

/** A value that a normalising proxy would read as a step in the path rather than a name. */
export function isDotSegment (value: string): boolean {
  return value === '.' || value === '..'
}

/**
 * A value as one segment of an upstream path, escaped by `escape`. Throws a
 * BAD_REQUEST for one that would be no name once escaped: encoding the dots
 * as `%2E` is no way out, since URL parsers read that as a dot too.
 */
export function pathSegment (value: string, what: string, escape: (value: string) => string = encodeURIComponent): string {
  const segment = escape(value)
  if (NOT_A_NAME.test(segment)) throw new BridgeError(ErrorCode.BAD_REQUEST, `${what} must not be empty, "." or ".."`)
  return segment
}

/**
 * The token as a path segment: characters that would end the segment or the
 * path are escaped; the rest, `:` included, goes as it is, as the platform's
 * own clients send it.
 */
export function tokenPath (token: string): string {
  return pathSegment(token, 'the channel token', escapeTokenChars)
}

function escapeTokenChars (token: string): string {
  return token.replace(/[/?#%\s]/g, (c) => encodeURIComponent(c))
}

/**
 * Every form in which the channel token can come back from the upstream: as
 * it is, trimmed, and percent-encoded (a server that echoes the request's
 * path or URL). Longest first, so that no shorter form leaves a piece of a
 * longer one behind.
 */
export function tokenForms (token: string): string[] {
  let cached = FORMS.get(token)
  if (cached === undefined) {
    cached = formsOf(token)
    if (FORMS.size > 64) FORMS.clear()
    FORMS.set(token, cached)
  }
  return cached
}

const FORMS = new Map<string, string[]>()

function formsOf (token: string): string[] {
  const forms = new Set<string>()
  for (const t of [token, token.trim()]) {
    if (t === '') continue
    forms.add(t)
    forms.add(encodeURIComponent(t))
    forms.add(encodeURI(t))
    forms.add(encodeURIComponent(t).toLowerCase())
    // The form the bridge itself puts in the request's path, which a server may echo (masking never throws).
    forms.add(escapeTokenChars(t))
  }
  return [...forms].sort((a, b) => b.length - a.length)
}

function contains (text: string, forms: string[]): boolean {
  if (forms.some((f) => text.includes(f))) return true
  // Percent escapes may come back in either case; only then is a lower-cased copy worth making.
  if (!text.includes('%')) return false
  const lower = text.toLowerCase()
  return forms.some((f) => lower.includes(f.toLowerCase()))
}

function mask (text: string, forms: string[]): string {
  let out = text
  for (const f of forms) {
    if (out.includes(f)) out = out.replaceAll(f, REDACTED)
    else if (f !== f.toLowerCase() && out.toLowerCase().includes(f.toLowerCase())) {
      // Percent escapes may come back in either case.
      out = out.replace(new RegExp(f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), REDACTED)
    }
  }
  return out
}

/**
 * Parses an upstream body (an answer, or a webhook delivery) and removes the
 * channel token wherever the upstream echoed it: `token` fields holding it are
 * dropped, and any other string containing it (in any of its forms) has it
 * masked, keys included. Returns undefined when the text is not JSON.
 */
export function parseUpstreamJson (text: string, token: string): unknown {
  const forms = tokenForms(token)
  try {
    if (!contains(text, forms)) return JSON.parse(text)
    return JSON.parse(text, function (this: Record<string, unknown>, key, value: unknown) {
      if (key !== '' && contains(key, forms)) {
        // A key naming the token: the value moves to a masked key.
        this[mask(key, forms)] = value
        return undefined
      }
      if (key === 'token' && typeof value === 'string' && forms.includes(value.trim())) return undefined
      if (typeof value === 'string' && contains(value, forms)) return mask(value, forms)
      return value
    })
  } catch {
    return undefined
  }
}

export function maskToken (text: string, token: string): string {
  return mask(text, tokenForms(token))
}
