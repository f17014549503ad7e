/** Percentiles and summaries of samples, and the table the harness prints. */

export interface Summary { n: number, p50: number, p99: number, max: number }

export function summarize (samples: number[]): Summary {
  if (samples.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN }
  const s = Float64Array.from(samples).sort()
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] as number }
}

/** a / b, or NaN when either is missing. */
export function ratio (a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN
}

export function fmt (x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '—'
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US')
  return x.toFixed(digits)
}

/** A plain text table with aligned columns. */
export function table (head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** One line of the bench's table: a figure, the size it was taken at, both sides, and how they compare. */
export interface Row { figure: string, size: string, bridge: string, baseline: string, ratio: string, target: string }

/** The table every bench command prints. */
export function rowTable (rows: Row[]): string {
  return table(['figure', 'size', 'bridge', 'baseline', 'ratio / added', 'target'], rows.map((r) => [r.figure, r.size, r.bridge, r.baseline, r.ratio, r.target]))
}

/** `--name=value` and bare `--flag` (as 'true') from the command line. */
export function cliArgs (argv = process.argv.slice(2)): Map<string, string> {
  return new Map(argv.map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=')
    return [k as string, v ?? 'true']
  }))
}
