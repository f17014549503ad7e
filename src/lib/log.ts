/** The two levels a pipeline part logs at; a pino logger is one, so is a test's recorder. */
export interface Log {
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
}
