/**
 * The map key of a client of a channel, with more parts when the thing keyed
 * is narrower (a connection, a request): newline-joined, since neither a
 * channel name nor a client id can hold a newline.
 */
export function clientKey (channel: string, clientId: string, ...more: string[]): string {
  let k = `${channel}\n${clientId}`
  for (const m of more) k += `\n${m}`
  return k
}
