import { clearLine, cursorTo, type Interface } from 'node:readline'

/**
 * The terminal's output. Lines that come while the prompt is shown would
 * land after it (`> bot: …`), so on a TTY the prompt line is cleared first
 * and drawn again, with what was typed so far, after them. Piped output
 * gets no prompt at all.
 */
export class Terminal {
  private readonly rl: Interface
  private readonly out: NodeJS.WriteStream
  private readonly tty: boolean
  private prompting = false

  constructor (rl: Interface, out: NodeJS.WriteStream) {
    this.rl = rl
    this.out = out
    // Undefined, not false, on a pipe.
    this.tty = out.isTTY === true
  }

  say (lines: string | string[]): void {
    const list = typeof lines === 'string' ? [lines] : lines
    if (list.length === 0) return
    if (this.prompting) {
      clearLine(this.out, 0)
      cursorTo(this.out, 0)
    }
    for (const line of list) this.out.write(`${line}\n`)
    if (this.prompting) this.rl.prompt(true)
  }

  /** Shows the prompt, from now on after every output too (on a TTY only). */
  prompt (): void {
    if (!this.tty) return
    this.prompting = true
    this.rl.prompt(true)
  }
}
