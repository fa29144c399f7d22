/**
 * Errors a cache caller can meet besides the package's common ones
 * (InvalidArgumentError, ClusterStoppedError).
 */

/** A key or value is larger, once encoded with msgpack, than the cache allows. */
export class CacheEntryTooLargeError extends Error {
  override readonly name = 'CacheEntryTooLargeError'
  readonly code = 'ERR_CACHE_ENTRY_TOO_LARGE'
  /** Which part was too large. */
  readonly part: 'key' | 'value'
  /** Its encoded size. */
  readonly bytes: number
  /** The cache's limit for that part (`maxKeyBytes` or `maxValueBytes`). */
  readonly limit: number

  constructor (cache: string, part: 'key' | 'value', bytes: number, limit: number) {
    super(`cache ${cache}: the ${part} encodes to ${bytes} bytes, over the limit of ${limit} (max${part === 'key' ? 'Key' : 'Value'}Bytes)`)
    this.part = part
    this.bytes = bytes
    this.limit = limit
  }
}
