/**
 * An async iterator fed by pushes: what `for await` reads from. Values wait in
 * a buffer until they are read; `end()` lets the reader finish after the
 * buffered ones, `return()` (a `break` in the loop) stops at once.
 */
export class EventStream<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = []
  private readonly readers: Array<(r: IteratorResult<T>) => void> = []
  private ended = false
  private readonly onReturn: () => void

  constructor (onReturn: () => void) {
    this.onReturn = onReturn
  }

  push (value: T): void {
    if (this.ended) return
    const reader = this.readers.shift()
    if (reader !== undefined) reader({ value, done: false })
    else this.buffer.push(value)
  }

  end (): void {
    if (this.ended) return
    this.ended = true
    for (const reader of this.readers.splice(0)) reader({ value: undefined, done: true })
  }

  async next (): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) return { value: this.buffer.shift() as T, done: false }
    if (this.ended) return { value: undefined, done: true }
    return await new Promise((resolve) => { this.readers.push(resolve) })
  }

  async return (): Promise<IteratorResult<T>> {
    this.buffer.length = 0
    this.end()
    this.onReturn()
    return { value: undefined, done: true }
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}
