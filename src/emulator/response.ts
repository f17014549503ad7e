import { answerOf, type Reply } from './bot.js'

/** `data` of a bot answer, as documented. */
export interface ResponseData {
  nlpClass: string
  confidence: number
  replies: Reply[]
  answer: string
  newSessionStarted: boolean
  endSession: boolean
  debugData: unknown[]
}

/** The answer of a sync request, and each element of a webhook payload. */
export interface ChatResponse {
  token: string
  clientId: string
  questionId: string
  cid?: string
  data: ResponseData
  timestamp: string
  blockForm: false
}

export interface ResponseParts {
  token: string
  clientId: string
  questionId: string
  cid?: string | undefined
  /** As the upstream's clock prints it. */
  timestamp: string
  nlpClass: string
  confidence: number
  replies: Reply[]
  newSessionStarted?: boolean
}

export function chatResponse (parts: ResponseParts): ChatResponse {
  const data: ResponseData = {
    nlpClass: parts.nlpClass,
    confidence: parts.confidence,
    replies: parts.replies,
    answer: answerOf(parts.replies),
    newSessionStarted: parts.newSessionStarted ?? false,
    endSession: false,
    debugData: []
  }
  return {
    token: parts.token,
    clientId: parts.clientId,
    questionId: parts.questionId,
    // Echoed when the request carried one; absent otherwise.
    ...(parts.cid === undefined ? {} : { cid: parts.cid }),
    data,
    timestamp: parts.timestamp,
    blockForm: false
  }
}
