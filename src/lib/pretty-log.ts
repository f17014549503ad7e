import type { Config } from '../config.js'

/**
 * pino's JSON lines as a person reads them at a terminal: time, level, message,
 * then `key=value`. Ours rather than pino-pretty, which brings a dozen
 * packages for what fits here. It is a destination stream, so it sees each
 * line as pino wrote it, after redaction: nothing redacted comes back.
 */

/** Where pretty lines go: standard output, or a test's recorder. */
export interface TextSink {
  write: (text: string) => unknown
  /** True on a terminal; undefined (not false) on a pipe. */
  isTTY?: boolean
}

/** What pino writes its lines to (the `stream` of its options). */
export interface LineStream {
  write: (line: string) => void
}

export interface PrettyOptions {
  /** ANSI colours on the level word. */
  color: boolean
}

/**
 * The log stream LOG_FORMAT asks for, writing to `stdout`; undefined leaves
 * pino's JSON lines on stdout. "auto" is pretty on a terminal only: behind a
 * pipe, in a container or in CI the reader is a program. Colour needs a
 * terminal and no NO_COLOR (https://no-color.org).
 */
export function logStream (format: Config['LOG_FORMAT'], stdout: TextSink, env: Record<string, string | undefined>): LineStream | undefined {
  const tty = stdout.isTTY === true
  if (format === 'json' || (format === 'auto' && !tty)) return undefined
  return prettyStream(stdout, { color: tty && (env.NO_COLOR ?? '') === '' })
}

/** A destination stream that writes each JSON line to `out` as a pretty one. */
export function prettyStream (out: TextSink, o: PrettyOptions): LineStream {
  return {
    write (chunk) {
      // pino writes one line per call; JSON escapes newlines, so every \n ends a line.
      const lines = (chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk).split('\n')
      out.write(`${lines.map((l) => prettyLine(l, o)).join('\n')}\n`)
    }
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const COLORS: Record<string, string> = { TRACE: '2', DEBUG: '2', WARN: '33', ERROR: '31', FATAL: '31' }
/** pino's own fields: shown in the head of the line, or of no use to a person at the terminal. */
const HEAD = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v'])
/** Fields that hold an error: its message on the line, its stack below. */
const ERROR_KEYS = new Set(['err', 'error'])
/**
 * A string field the message already says in full (the ready line's
 * addresses) is not said twice. Shorter values could match a word of the
 * message by chance.
 */
const SAID_MIN = 8

/** One JSON line as a pretty one (with the error stacks on the lines below); a line that is no JSON object as it is. */
export function prettyLine (line: string, o: PrettyOptions): string {
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch {
    return line
  }
  if (!isRecord(parsed)) return line
  const msg = typeof parsed.msg === 'string' ? parsed.msg : ''
  const parts = [clock(parsed.time), levelWord(parsed.level, o.color), msg].filter((p) => p !== '')
  const below: string[] = []
  for (const [key, value] of Object.entries(parsed)) {
    if (HEAD.has(key)) continue
    if (ERROR_KEYS.has(key) && isRecord(value) && typeof value.message === 'string') {
      parts.push(...errorFields(key, value))
      below.push(...stackLines(value.stack))
      continue
    }
    if (typeof value === 'string' && value.length >= SAID_MIN && msg.includes(value)) continue
    parts.push(`${key}=${shown(value)}`)
  }
  return [parts.join(' '), ...below.map((l) => `    ${l}`)].join('\n')
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Local time of day, HH:MM:SS.mmm: a terminal's reader knows the date. */
function clock (time: unknown): string {
  if (typeof time !== 'number') return ''
  const d = new Date(time)
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

function levelWord (level: unknown, color: boolean): string {
  const word = typeof level === 'number' ? LEVELS[level] ?? String(level) : typeof level === 'string' ? level.toUpperCase() : '?'
  // Padded before colouring, so the messages line up.
  const padded = word.padEnd(5)
  const code = COLORS[word]
  return color && code !== undefined ? `\u001b[${code}m${padded}\u001b[0m` : padded
}

/** The message, then the error's other fields (code, status…) as `err.code=…`. */
function errorFields (key: string, err: Record<string, unknown>): string[] {
  const rest = Object.entries(err).filter(([k]) => k !== 'message' && k !== 'stack' && k !== 'type')
  return [`${key}=${shown(err.message)}`, ...rest.map(([k, v]) => `${key}.${k}=${shown(v)}`)]
}

/** The frames of a stack, without its first line(s), which repeat the message. */
function stackLines (stack: unknown): string[] {
  if (typeof stack !== 'string') return []
  const lines = stack.split('\n')
  const first = lines.findIndex((l) => /^\s*at /.test(l))
  return first < 0 ? [] : lines.slice(first).map((l) => l.trim())
}

/** A value as `key=` shows it: a string quoted only when it must be, anything else as compact JSON. */
function shown (value: unknown): string {
  if (typeof value === 'string') return value === '' || /[\s"]/.test(value) ? JSON.stringify(value) : value
  return JSON.stringify(value)
}
