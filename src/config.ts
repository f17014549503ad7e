import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseProfiles } from './emulator/profiles.js'

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description })
const Ms = (def: number, min: number, description: string) =>
  Type.Integer({ minimum: min, maximum: 86_400_000, default: def, description })

/**
 * Every setting of the bridge, read from the environment. The property names
 * are the environment variable names: operators and scripts rely on them.
 */
export const ConfigSchema = Type.Object({
  PORT: Port(3000, 'TCP port of the bridge'),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'address to listen on (0.0.0.0 in a container)' }),
  UPSTREAM_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Chat API base URL, e.g. https://bot.jaicp.com/chatapi' })),
  CHATAPI_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'channel token of the Chat API' })),
  CHANNELS: Type.Optional(Type.String({ description: 'JSON object {"name": {"url": "...", "token": "...", "webhookSecret": "..."}} of extra channels; webhookSecret (optional, 16+ letters, digits, _ or -) is the secret of that channel\'s webhook URL' })),
  DEFAULT_CHANNEL: Type.Optional(Type.String({ minLength: 1, description: 'channel used when ?channel= is left out' })),
  AUTH_MODE: Type.Union([Type.Literal('ticket'), Type.Literal('jwt')], { default: 'ticket', description: '"ticket" or "jwt"' }),
  TICKET_SECRET: Type.Optional(Type.String({ minLength: 16, description: 'secret signing tickets and cursors, at least 16 characters' })),
  TICKET_TTL_S: Type.Integer({ minimum: 60, default: 30 * 86_400, description: 'ticket lifetime in seconds' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 16, description: 'HMAC secret verifying JWTs, at least 16 characters' })),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1, description: 'PEM public key (RS/ES/PS/EdDSA) verifying JWTs' })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1, description: 'required iss claim of JWTs' })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1, description: 'required aud claim of JWTs' })),
  ALLOWED_ORIGINS: Type.String({ default: '', description: 'comma-separated origins allowed to open sockets; empty allows any' }),
  MAX_FRAME_BYTES: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 65_536, description: 'largest client frame in bytes' }),
  WS_COMPRESSION: Type.Boolean({ default: false, description: 'accept permessage-deflate from clients that offer it (true or false); it costs CPU per compressed frame and zlib memory per socket that has had one' }),
  WS_COMPRESSION_THRESHOLD: Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024, default: 1024, description: 'with WS_COMPRESSION, frames smaller than this many bytes go uncompressed' }),
  WS_COMPRESSION_CONTEXT: Type.Boolean({ default: false, description: 'with WS_COMPRESSION, keep each socket\'s compression context from frame to frame (true or false): fewer bytes for similar frames, but every frame is compressed whatever WS_COMPRESSION_THRESHOLD says' }),
  HELLO_TIMEOUT_MS: Ms(10_000, 100, 'time a socket has to send hello'),
  HEARTBEAT_MS: Ms(25_000, 100, 'interval of pings to clients'),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), {
    default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent'
  }),
  LOG_FORMAT: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
    default: 'auto', description: '"auto" (pretty lines when standard output is a terminal, JSON lines otherwise), "json" or "pretty"'
  }),
  POLL_LINGER_MS: Ms(30_000, 0, 'how long an upstream poll outlives its last socket'),
  HANDOFF_FILE: Type.Optional(Type.String({ minLength: 1, description: 'file through which a graceful stop hands its connections\' recent events to the next start, so that sockets resume from memory at once after a restart; it holds conversations (written 0600, read once and deleted); not used with REDIS_URL or webhooks' })),
  POLL_TIMEOUT_MS: Ms(40_000, 1000, 'longest wait for one upstream /events answer (longer than the upstream hold)'),
  REQUEST_TIMEOUT_MS: Ms(15_000, 100, 'longest wait for one upstream request'),
  UPSTREAM_HTTP2: Type.Union([Type.Literal('auto'), Type.Literal('h2c'), Type.Literal('off')], {
    default: 'auto', description: '"auto" (HTTP/2 where TLS negotiates it, else HTTP/1.1), "h2c" (cleartext HTTP/2 by prior knowledge) or "off" (HTTP/1.1 only)'
  }),
  UPSTREAM_CALLS_HTTP2: Type.Boolean({ default: false, description: 'send the other calls (sends, state, history) over HTTP/2 as well, as UPSTREAM_HTTP2 says; by default they use HTTP/1.1 keep-alive connections' }),
  UPSTREAM_STREAMS: Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: 'upstream long polls carried by one HTTP/2 connection at most' }),
  UPSTREAM_POLL_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 100_000, default: 4000, description: 'upstream connections for long polls per channel at most; over HTTP/1.1 this caps the polls held at once' }),
  UPSTREAM_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 100_000, default: 64, description: 'upstream connections for other calls (sends, state, history) per channel at most' }),
  BACKOFF_BASE_MS: Ms(500, 1, 'first retry delay after an upstream failure'),
  BACKOFF_MAX_MS: Ms(30_000, 1, 'largest retry delay after upstream failures'),
  OUTBOUND_QUEUE_BYTES: Type.Integer({ minimum: 4096, default: 1_048_576, description: 'bytes queued to one socket before the bridge stops sending it events (they wait, nothing is lost)' }),
  SLOW_CLIENT_MS: Ms(30_000, 100, 'how long a socket may stay behind before it is closed with 4409 (it then resumes)'),
  RATE_LIMIT_PER_S: Type.Number({ minimum: 0.1, default: 20, description: 'requests per second a socket may send, on average' }),
  RATE_LIMIT_BURST: Type.Integer({ minimum: 1, default: 40, description: 'requests a socket may send at once' }),
  MAX_SOCKETS_PER_CLIENT: Type.Integer({ minimum: 1, default: 32, description: 'open sockets one client may have on this instance' }),
  MAX_POLLS: Type.Integer({ minimum: 1, default: 20_000, description: 'upstream long polls this instance keeps at most; more sockets are refused with 1013' }),
  POLL_STARTS_PER_S: Type.Number({ minimum: 1, default: 200, description: 'new upstream polls started per second at most (reconnect storms)' }),
  RESULT_CACHE_MS: Ms(600_000, 1000, 'how long a request result is kept to answer a resent id'),
  EVENT_BUFFER: Type.Integer({ minimum: 0, maximum: 10_000, default: 200, description: 'recent events kept per connection for resumes' }),
  RESULT_CACHE_BYTES: Type.Integer({ minimum: 65_536, default: 64 * 1_048_576, description: 'bytes of request results kept for resends on this instance at most' }),
  RESULT_CACHE_CLIENT_BYTES: Type.Integer({ minimum: 4096, default: 1_048_576, description: 'bytes of request results kept for one client at most; past it the client\'s own oldest go first' }),
  EVENT_BUFFER_BYTES: Type.Integer({ minimum: 4096, default: 1_048_576, description: 'bytes of recent events kept for one client across all its connections (one copy of each event)' }),
  SEND_QUEUE_PER_CLIENT: Type.Integer({ minimum: 1, maximum: 100_000, default: 32, description: 'sends of one client waiting for their turn at most; more fail with RATE_LIMITED' }),
  UPSTREAM_CALLS_PER_CLIENT: Type.Integer({ minimum: 1, maximum: 10_000, default: 4, description: 'upstream calls (sends, state, history) one client has in flight at once at most; the connections of a channel are shared out fairly between clients' }),
  MAX_SOCKETS_PER_ADDRESS: Type.Integer({ minimum: 1, default: 10_000, description: 'open sockets from one source address at most (many visitors may share one address behind a NAT)' }),
  NEW_CLIENTS_PER_ADDRESS_PER_S: Type.Number({ minimum: 0.1, default: 100, description: 'anonymous clients (new tickets) made per second for one source address, on average' }),
  NEW_CLIENTS_PER_ADDRESS_BURST: Type.Integer({ minimum: 1, default: 10_000, description: 'anonymous clients made at once for one source address' }),
  TRUST_PROXY: Type.String({ default: '', description: 'where the client address comes from: empty uses the TCP peer; "true" trusts X-Forwarded-For from any peer, a number trusts that many proxy hops, a comma-separated list of addresses or CIDRs trusts those proxies' }),
  HTTP_TIMEOUT_MS: Ms(10_000, 100, 'deadline for the headers and the body of every HTTP request (webhooks, pages, upgrades)'),
  JWT_MAX_AGE_S: Type.Integer({ minimum: 60, default: 86_400, description: 'longest lifetime a JWT may claim: exp at most this far after iat, and after now' }),
  DRAIN_MS: Ms(5000, 0, 'window over which open sockets are closed (1012, with jitter) on SIGTERM'),
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 100, 'deadline for a graceful shutdown; longer than DRAIN_MS'),
  METRICS: Type.Boolean({ default: true, description: 'serve Prometheus metrics at /metrics (true or false)' }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'serve /metrics on this port instead of the main one' })),
  WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 16, pattern: '^[A-Za-z0-9_-]+$', description: 'secret in the webhook URL, at least 16 letters, digits, _ or -; unset turns the webhook off' })),
  WEBHOOK_MAX_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'largest webhook body in bytes' }),
  WEBHOOK_RATE_PER_S: Type.Number({ minimum: 1, default: 50, description: 'webhook deliveries per second per channel, on average' }),
  WEBHOOK_RETENTION_MS: Ms(3_600_000, 1000, 'how long webhook events are kept for clients that resume'),
  OFFLINE_HOOK_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'http or https URL of your backend that is posted each webhook event for a client with no open socket (to send a push notification); unset turns it off' })),
  OFFLINE_HOOK_SECRET: Type.Optional(Type.String({ minLength: 16, description: 'secret signing the offline hook\'s posts (HMAC-SHA256), at least 16 characters; required with OFFLINE_HOOK_URL' })),
  OFFLINE_HOOK_TIMEOUT_MS: Ms(5000, 100, 'longest wait for one post to OFFLINE_HOOK_URL'),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Redis URL (redis:// or rediss://) shared by every instance; unset runs the bridge on its own. With REDIS_CLUSTER, a comma-separated list of seed nodes' })),
  REDIS_OPTIONS: Type.Optional(Type.String({ description: 'JSON object of extra ioredis options, e.g. {"sentinels":[{"host":"s1","port":26379}],"name":"mymaster"} for Sentinel' })),
  REDIS_CLUSTER: Type.Boolean({ default: false, description: 'REDIS_URL names the seed nodes of a Redis Cluster (true or false)' }),
  REDIS_PREFIX: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9:_.-]+$', default: 'chatapi-bridge:', description: 'prefix of every Redis key and channel of this deployment (letters, digits, :, _, ., -)' }),
  REDIS_LEASE_MS: Ms(5000, 300, 'lease of the instance that polls a connection upstream; another instance takes over within about this time after it dies'),
  REDIS_STREAM_MAXLEN: Type.Integer({ minimum: 10, maximum: 100_000, default: 1000, description: 'events kept in Redis per connection, for the other instances and for resumes' }),
  REDIS_STREAM_MAX_BYTES: Type.Integer({ minimum: 4096, default: 1_048_576, description: 'bytes of events kept in Redis per connection at most; past it the oldest go (the newest always stays)' }),
  REDIS_STREAM_TTL_MS: Ms(600_000, 1000, 'how long the events of a connection stay in Redis after its last socket left'),
  REDIS_TIMEOUT_MS: Ms(2000, 50, 'longest wait for one Redis command; a slower Redis counts as down'),
  DEMO_PAGE: Type.Optional(Type.Boolean({ description: 'serve the demo chat page at / (true or false); on by default with the built-in emulator' })),
  EMULATOR_PORT: Port(3001, 'port of the built-in emulator (used when UPSTREAM_URL is unset)'),
  EMULATOR_HOLD_MS: Ms(25_000, 10, 'long-poll hold time of the built-in emulator'),
  EMULATOR_PROFILE: Type.Optional(Type.String({ description: 'comma-separated behaviour profiles of the built-in emulator (see src/emulator/profiles.ts)' }))
})
export type Config = Static<typeof ConfigSchema>

export interface Channel {
  name: string
  url: string
  token: string
  /** The secret of this channel's webhook URL, from CHANNELS; for a channel without one, see webhookSecrets in src/plugins/webhook-receiver.ts. */
  webhookSecret?: string
}

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

function convert (schema: TSchema, raw: string): unknown {
  const trimmed = raw.trim()
  if (schema.type === 'integer' || schema.type === 'number') return trimmed === '' ? raw : Number(trimmed)
  if (schema.type === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(trimmed)) return true
    if (/^(0|false|no|off)$/i.test(trimmed)) return false
    return raw
  }
  return raw
}

/**
 * Reads every setting from `env` (a plain object, so tests never touch
 * process.env). A wrong value throws a ConfigError naming the variable and
 * what it expects.
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  const out: Record<string, unknown> = {}
  const problems: string[] = []
  for (const [name, schema] of Object.entries(ConfigSchema.properties) as Array<[string, TSchema]>) {
    const raw = env[name]
    if (raw === undefined || raw === '') {
      if (schema.default !== undefined) out[name] = schema.default
      continue
    }
    const value = convert(schema, raw)
    if (!Value.Check(schema, value)) {
      problems.push(`${shown(name, raw)} is not valid: expected ${String(schema.description)}${describe(schema)}`)
      continue
    }
    out[name] = value
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'))
  const config = out as Config
  crossCheck(config)
  return config
}

/**
 * Settings whose values never appear in an error: secrets, and values that
 * hold one (the tokens in CHANNELS, a password in a Redis URL or its
 * options). A PEM key is no secret, but a screenful of it helps nobody.
 */
const UNSHOWN = new Set(['TICKET_SECRET', 'JWT_SECRET', 'CHATAPI_TOKEN', 'WEBHOOK_SECRET', 'CHANNELS', 'REDIS_URL', 'REDIS_OPTIONS', 'JWT_PUBLIC_KEY', 'OFFLINE_HOOK_SECRET', 'OFFLINE_HOOK_URL'])

/** A setting as an error shows it: NAME="value", or only its length for one in UNSHOWN; a user:password in a URL is masked either way. */
function shown (name: string, raw: string): string {
  if (UNSHOWN.has(name)) return `${name} (${raw.length} characters, not shown)`
  return `${name}=${JSON.stringify(raw.replace(/\/\/[^/@\s]*@/g, '//***@'))}`
}

function describe (schema: TSchema): string {
  const bounds: string[] = []
  if (schema.type === 'integer') bounds.push('an integer')
  if (schema.minimum !== undefined) bounds.push(`>= ${String(schema.minimum)}`)
  if (schema.maximum !== undefined) bounds.push(`<= ${String(schema.maximum)}`)
  return bounds.length > 0 ? ` (${bounds.join(', ')})` : ''
}

function crossCheck (config: Config): void {
  if ((config.UPSTREAM_URL === undefined) !== (config.CHATAPI_TOKEN === undefined)) {
    throw new ConfigError('UPSTREAM_URL and CHATAPI_TOKEN go together: set both for a real Chat API, or neither to use the built-in emulator')
  }
  if (config.AUTH_MODE === 'jwt' && config.JWT_SECRET === undefined && config.JWT_PUBLIC_KEY === undefined) {
    throw new ConfigError('AUTH_MODE=jwt needs JWT_SECRET (HMAC) or JWT_PUBLIC_KEY (PEM)')
  }
  if (config.REDIS_OPTIONS !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(config.REDIS_OPTIONS)
    } catch {
      throw new ConfigError('REDIS_OPTIONS is not valid JSON: expected an object of ioredis options')
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError('REDIS_OPTIONS must be a JSON object of ioredis options')
  }
  if (config.SHUTDOWN_TIMEOUT_MS <= config.DRAIN_MS) {
    throw new ConfigError('SHUTDOWN_TIMEOUT_MS must be longer than DRAIN_MS, so the drain can finish before the deadline')
  }
  if (config.OFFLINE_HOOK_URL !== undefined && config.OFFLINE_HOOK_SECRET === undefined) {
    throw new ConfigError('OFFLINE_HOOK_URL needs OFFLINE_HOOK_SECRET (16+ characters) to sign its posts')
  }
  if (config.OFFLINE_HOOK_URL !== undefined && !URL.canParse(config.OFFLINE_HOOK_URL)) {
    throw new ConfigError('OFFLINE_HOOK_URL is not a valid URL')
  }
  if (config.BACKOFF_MAX_MS < config.BACKOFF_BASE_MS) {
    throw new ConfigError('BACKOFF_MAX_MS must not be smaller than BACKOFF_BASE_MS')
  }
  if (config.EMULATOR_PROFILE !== undefined) {
    try {
      parseProfiles(config.EMULATOR_PROFILE)
    } catch (err) {
      throw new ConfigError(`EMULATOR_PROFILE=${JSON.stringify(config.EMULATOR_PROFILE)} is not valid: ${(err as Error).message}`)
    }
  }
  parseChannels(config)
}

const ChannelEntry = Type.Object({
  url: Type.String({ pattern: '^https?://' }),
  token: Type.String({ minLength: 1 }),
  webhookSecret: Type.Optional(Type.String({ minLength: 16, pattern: '^[A-Za-z0-9_-]+$' }))
})

/**
 * A channel's URL and token as the bridge will use them. The token goes into
 * the URL's path, so a URL with a query or a fragment would move it out of
 * the path (or after a `#`, out of the request): refused. Whitespace around
 * a token (a secret made from a file keeps its newline) is trimmed, and
 * `trimmed` says so; whitespace inside one is refused. The token's format
 * is not checked otherwise: channels of several ages have several formats.
 */
export function channelOf (name: string, url: string, token: string, where: { url: string, token: string }): Channel & { trimmed: boolean } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(`${where.url} is not a valid URL`)
  }
  if (parsed.search !== '' || parsed.hash !== '' || url.includes('?') || url.includes('#')) {
    throw new ConfigError(`${where.url} must not have a query or a fragment: the channel token is appended to its path (e.g. https://bot.jaicp.com/chatapi)`)
  }
  const clean = token.trim()
  if (clean === '') throw new ConfigError(`${where.token} is empty`)
  if (/\s/.test(clean)) throw new ConfigError(`${where.token} contains whitespace: a channel token has none`)
  return { name, url, token: clean, trimmed: clean !== token }
}

/** Why a channel's token was changed at start-up, for the log (never the token itself). */
export function channelWarnings (config: Config): string[] {
  return parseChannelEntries(config).filter((c) => c.trimmed).map((c) => `the token of channel "${c.name}" had whitespace around it, which was removed`)
}

/** The named channels of CHANNELS, plus "default" from UPSTREAM_URL/CHATAPI_TOKEN. */
export function parseChannels (config: Config): Channel[] {
  return parseChannelEntries(config).map(({ trimmed: _, ...channel }) => channel)
}

function parseChannelEntries (config: Config): Array<Channel & { trimmed: boolean }> {
  const channels: Array<Channel & { trimmed: boolean }> = []
  if (config.UPSTREAM_URL !== undefined && config.CHATAPI_TOKEN !== undefined) {
    channels.push(channelOf('default', config.UPSTREAM_URL, config.CHATAPI_TOKEN, { url: 'UPSTREAM_URL', token: 'CHATAPI_TOKEN' }))
  }
  if (config.CHANNELS !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(config.CHANNELS)
    } catch {
      throw new ConfigError('CHANNELS is not valid JSON: expected {"name": {"url": "https://…/chatapi", "token": "…"}}')
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError('CHANNELS must be a JSON object of channels by name')
    }
    for (const [name, entry] of Object.entries(parsed)) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new ConfigError(`CHANNELS: the name "${name}" must be 1-64 letters, digits, _ or -`)
      if (!Value.Check(ChannelEntry, entry)) throw new ConfigError(`CHANNELS.${name} needs "url" (http or https) and "token", and a "webhookSecret", if any, of 16+ letters, digits, _ or -`)
      if (channels.some((c) => c.name === name)) throw new ConfigError(`CHANNELS: "${name}" is defined twice`)
      const channel = channelOf(name, entry.url, entry.token, { url: `CHANNELS.${name}.url`, token: `CHANNELS.${name}.token` })
      channels.push(entry.webhookSecret === undefined ? channel : { ...channel, webhookSecret: entry.webhookSecret })
    }
  }
  if (config.DEFAULT_CHANNEL !== undefined && channels.length > 0 && !channels.some((c) => c.name === config.DEFAULT_CHANNEL)) {
    throw new ConfigError(`DEFAULT_CHANNEL="${config.DEFAULT_CHANNEL}" names no configured channel`)
  }
  return channels
}
