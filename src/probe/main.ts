#!/usr/bin/env node
/**
 * `npm run probe` (bin `chatapi-probe`): tells how a channel's Chat API
 * behaves and which bridge settings fit. The only file of the probe that
 * touches `process`. Exits 0 with a report, 2 when settings are missing or
 * wrong, 1 when the upstream cannot be reached. Progress goes to stderr,
 * the report (or with --json, the report as JSON) to stdout.
 */
import { maskToken } from '../upstream/json.js'
import { probeChatApi, ProbeUnreachableError } from './probe.js'
import { formatReport } from './report.js'
import { probeOptionsFrom, ProbeSettingsError, USAGE } from './settings.js'
import type { ProbeOptions } from './types.js'

async function main (): Promise<number> {
  let options: ProbeOptions
  try {
    options = probeOptionsFrom(process.env)
  } catch (err) {
    if (!(err instanceof ProbeSettingsError)) throw err
    console.error(`chatapi-probe: ${err.message}\n${USAGE}`)
    return 2
  }
  try {
    const report = await probeChatApi({ ...options, log: line => console.error(line) })
    process.stdout.write(process.argv.includes('--json') ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
    return 0
  } catch (err) {
    // ProbeUnreachableError is masked already; anything else is masked here, since a stack may quote a URL.
    const message = err instanceof Error ? (err instanceof ProbeUnreachableError ? err.message : String(err.stack)) : String(err)
    console.error(`chatapi-probe: ${maskToken(message, options.token)}`)
    return 1
  }
}

process.exitCode = await main()
