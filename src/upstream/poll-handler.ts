import { BridgeError } from '../socket/errors.js'
import type { UpstreamCall } from './calls.js'
import { BodyReader } from './body-reader.js'
import type { PollCall, PollSink } from './poll-upstream.js'
import { eventsOrError, type UpstreamAnswers } from './upstream-answers.js'

const EVENTS_CALL: UpstreamCall = { name: 'events', method: 'GET', path: '/events' }

/**
 * A long poll: the only object the bridge keeps for a held poll, on top of
 * undici's own request. An idle client holds one for the whole hold time,
 * so it takes no closure, promise or AbortController of its own.
 */
export class PollHandler extends BodyReader implements PollCall {
  private readonly answers: UpstreamAnswers
  private readonly sink: PollSink

  constructor (answers: UpstreamAnswers, sink: PollSink) {
    super()
    this.answers = answers
    this.sink = sink
  }

  override onRequestSent (): void {
    this.sink.pollSent?.()
  }

  protected answered (status: number, text: string, retryAfter: string | undefined, date: string | undefined): void {
    const body = this.answers.answerOf(EVENTS_CALL, status, text, retryAfter, date, this.started)
    const events = body instanceof BridgeError ? body : eventsOrError(body)
    if (events instanceof BridgeError) this.sink.pollFailed(events)
    else this.sink.pollAnswered(events)
  }

  protected failed (err: unknown): void {
    this.sink.pollFailed(this.answers.failureOf(EVENTS_CALL, err, this.started))
  }
}
