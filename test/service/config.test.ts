import t from 'tap'
import { ConfigError, channelWarnings, loadConfig, parseChannels, ConfigSchema } from '../../dist/config.js'
import { readFileSync } from 'node:fs'

t.test('defaults', async (t) => {
  const c = loadConfig({})
  t.equal(c.PORT, 3000)
  t.equal(c.AUTH_MODE, 'ticket')
  t.equal(c.MAX_FRAME_BYTES, 65536)
  t.equal(c.ALLOWED_ORIGINS, '')
  t.same(parseChannels(c), [], 'no channel: the emulator will be used')
})

t.test('values are converted and checked, and errors name the variable', async (t) => {
  t.equal(loadConfig({ PORT: '8080' }).PORT, 8080)
  t.throws(() => loadConfig({ PORT: 'eighty' }), { name: 'ConfigError', message: /PORT="eighty".*integer/ })
  t.throws(() => loadConfig({ PORT: '70000' }), { message: /PORT.*<= 65535/ })
  t.throws(() => loadConfig({ AUTH_MODE: 'cookie' }), { message: /AUTH_MODE.*ticket.*jwt/ })
  t.throws(() => loadConfig({ TICKET_SECRET: 'short' }), { message: /TICKET_SECRET.*16/ })
  t.throws(() => loadConfig({ UPSTREAM_URL: 'ftp://x' }), { message: /UPSTREAM_URL/ })
  t.throws(() => loadConfig({ HEARTBEAT_MS: '-5', LOG_LEVEL: 'loud' }), { message: /HEARTBEAT_MS[\s\S]*LOG_LEVEL/ }, 'every problem at once')
})

t.test('cross-checks', async (t) => {
  t.throws(() => loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi' }), ConfigError, 'URL without token')
  t.throws(() => loadConfig({ AUTH_MODE: 'jwt' }), { message: /JWT_SECRET/ })
  t.throws(() => loadConfig({ CHANNELS: '{nope' }), { message: /CHANNELS is not valid JSON/ })
  t.throws(() => loadConfig({ CHANNELS: '{"a b":{"url":"https://x","token":"t"}}' }), { message: /name/ })
  t.throws(() => loadConfig({ CHANNELS: '{"a":{"url":"https://x"}}' }), { message: /CHANNELS.a/ })
  const c = loadConfig({
    UPSTREAM_URL: 'https://bot.jaicp.com/chatapi',
    CHATAPI_TOKEN: 'tok',
    CHANNELS: '{"sales":{"url":"https://app.jaicp.com/chatapi","token":"t2"}}',
    DEFAULT_CHANNEL: 'sales'
  })
  t.same(parseChannels(c).map((ch) => ch.name), ['default', 'sales'])
  t.throws(() => loadConfig({ CHANNELS: '{"a":{"url":"https://x","token":"t"}}', DEFAULT_CHANNEL: 'b' }), { message: /DEFAULT_CHANNEL/ })
})

t.test('docs/operations.md documents every setting, and nothing that is none', async (t) => {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8')
  const table = doc.slice(doc.indexOf('## Every setting'))
  const names = Object.keys(ConfigSchema.properties)
  for (const name of names) t.match(table, `| \`${name}\``, `${name} is in the settings table`)
  const rows = [...table.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1])
  t.same(rows.filter((r) => !names.includes(r ?? '')), [], 'every row is a setting')
})

t.test('EMULATOR_PROFILE takes known profile names only', async (t) => {
  t.equal(loadConfig({}).EMULATOR_PROFILE, undefined)
  t.equal(loadConfig({ EMULATOR_PROFILE: 'no-hold, exclusive-ts' }).EMULATOR_PROFILE, 'no-hold, exclusive-ts')
  t.throws(() => loadConfig({ EMULATOR_PROFILE: 'no-hold,sometimes-hold' }), {
    name: 'ConfigError',
    message: /^EMULATOR_PROFILE="no-hold,sometimes-hold" is not valid: .*"sometimes-hold".*no-hold, timeout-408/
  })
})

t.test('a token with whitespace around it is trimmed and said so; one with whitespace inside, or a URL with a query, is refused', async (t) => {
  const c = loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi', CHATAPI_TOKEN: 'abc:0123\n' })
  t.equal(parseChannels(c)[0]?.token, 'abc:0123', 'the newline of a secret file is gone')
  const warnings = channelWarnings(c)
  t.equal(warnings.length, 1)
  t.notMatch(warnings[0], /abc/, 'the warning does not show the token')
  t.same(channelWarnings(loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi', CHATAPI_TOKEN: 'abc' })), [])
  t.throws(() => loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi', CHATAPI_TOKEN: 'ab c' }), { message: /CHATAPI_TOKEN contains whitespace/ })
  t.throws(() => loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi?x=1', CHATAPI_TOKEN: 't' }), { message: /UPSTREAM_URL must not have a query/ })
  t.throws(() => loadConfig({ UPSTREAM_URL: 'https://bot.jaicp.com/chatapi#x', CHATAPI_TOKEN: 't' }), { message: /UPSTREAM_URL must not have a query or a fragment/ })
  t.throws(() => loadConfig({ CHANNELS: '{"a":{"url":"https://x/chatapi?k=v","token":"t"}}' }), { message: /CHANNELS.a.url/ })
  t.throws(() => loadConfig({ CHANNELS: '{"a":{"url":"https://x/chatapi","token":"  "}}' }), { message: /CHANNELS.a.token is empty/ })
})
