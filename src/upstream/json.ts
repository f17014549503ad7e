const REDACTED = '[redacted]'

/**
 * Parses an upstream body (an answer, or a webhook delivery) and removes the
 * channel token wherever the upstream echoed it: `token` fields holding it are
 * dropped, and any other string containing it has it masked. Returns
 * undefined when the text is not JSON.
 */
export function parseUpstreamJson (text: string, token: string): unknown {
  try {
    if (!text.includes(token)) return JSON.parse(text)
    return JSON.parse(text, (key, value: unknown) => {
      if (key === 'token' && value === token) return undefined
      if (typeof value === 'string' && value.includes(token)) return value.replaceAll(token, REDACTED)
      return value
    })
  } catch {
    return undefined
  }
}

export function maskToken (text: string, token: string): string {
  return text.replaceAll(token, REDACTED)
}
