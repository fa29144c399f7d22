/**
 * Errors an event publisher can meet besides the package's common ones
 * (InvalidArgumentError, ClusterStoppedError).
 */

/** An event's payload, msgpack-encoded, is larger than the bus allows (`maxPayloadBytes`). */
export class EventTooLargeError extends Error {
  override readonly name = 'EventTooLargeError'
  readonly code = 'ERR_EVENT_TOO_LARGE'
  readonly bytes: number
  readonly limit: number

  constructor (topic: string, bytes: number, limit: number) {
    super(`event ${topic}: ${bytes} bytes encoded, over the limit of ${limit} (maxPayloadBytes)`)
    this.bytes = bytes
    this.limit = limit
  }
}
