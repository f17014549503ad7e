import { BridgeError } from '../socket/errors.js'
import type { UpstreamCall } from './calls.js'
import { BodyReader } from './body-reader.js'
import type { UpstreamAnswers } from './upstream-answers.js'

/** Any exchange other than a long poll, settling a promise with its answer's meaning. */
export class CallHandler extends BodyReader {
  private readonly answers: UpstreamAnswers
  private readonly call: UpstreamCall
  private readonly resolve: (body: unknown) => void
  private readonly reject: (err: BridgeError) => void

  constructor (answers: UpstreamAnswers, call: UpstreamCall, resolve: (body: unknown) => void, reject: (err: BridgeError) => void) {
    super()
    this.answers = answers
    this.call = call
    this.resolve = resolve
    this.reject = reject
  }

  protected answered (status: number, text: string, retryAfter: string | undefined, date: string | undefined): void {
    const body = this.answers.answerOf(this.call, status, text, retryAfter, date, this.started)
    if (body instanceof BridgeError) this.reject(body)
    else this.resolve(body)
  }

  protected failed (err: unknown): void {
    this.reject(this.answers.failureOf(this.call, err, this.started))
  }
}
