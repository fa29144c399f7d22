/**
 * Bounds-checked little-endian encoding for the storage formats (WAL records
 * and snapshot files). Every read checks its bounds so that a damaged or
 * hostile byte string raises {@link FormatError} instead of yielding a wrong
 * value or reading past the end.
 */

/** A byte string does not hold a well-formed value; the message says why. */
export class FormatError extends Error {
  override readonly name = 'FormatError'
}

const TWO_POW_32 = 2 ** 32
/** The high 32-bit word of Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH_WORD = 0x1fffff

// A leading U+FEFF is part of the string (a node id, say), not a byte-order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

/** The UTF-8 encoding of a string. */
export function utf8 (text: string): Uint8Array {
  return utf8Encoder.encode(text)
}

/** Appends fixed-size fields to a buffer allocated once with the exact size. */
export class ByteWriter {
  readonly bytes: Buffer
  #offset: number

  constructor (size: number, offset = 0) {
    this.bytes = Buffer.alloc(size)
    this.#offset = offset
  }

  u8 (value: number): this {
    this.#offset = this.bytes.writeUInt8(value, this.#offset)
    return this
  }

  u16 (value: number): this {
    this.#offset = this.bytes.writeUInt16LE(value, this.#offset)
    return this
  }

  u32 (value: number): this {
    this.#offset = this.bytes.writeUInt32LE(value, this.#offset)
    return this
  }

  /** A non-negative safe integer as 64 bits (low word first). */
  u64 (value: number): this {
    this.u32(value % TWO_POW_32)
    return this.u32(Math.floor(value / TWO_POW_32))
  }

  raw (data: Uint8Array): this {
    this.bytes.set(data, this.#offset)
    this.#offset += data.length
    return this
  }

  /** Checks the size given to the constructor was exactly right. */
  finish (): Buffer {
    if (this.#offset !== this.bytes.length) {
      throw new Error(`encoder wrote ${this.#offset} bytes into a ${this.bytes.length}-byte buffer`)
    }
    return this.bytes
  }
}

/** Reads fields from a byte string, throwing FormatError on any overrun. */
export class ByteReader {
  readonly #view: DataView
  readonly #bytes: Uint8Array
  #offset = 0

  constructor (bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get remaining (): number {
    return this.#bytes.length - this.#offset
  }

  #take (n: number, what: string): number {
    if (n > this.remaining) {
      throw new FormatError(`${what} needs ${n} bytes at body offset ${this.#offset}, ${this.remaining} left`)
    }
    const at = this.#offset
    this.#offset += n
    return at
  }

  u8 (what: string): number {
    return this.#view.getUint8(this.#take(1, what))
  }

  u16 (what: string): number {
    return this.#view.getUint16(this.#take(2, what), true)
  }

  u32 (what: string): number {
    return this.#view.getUint32(this.#take(4, what), true)
  }

  /** A 64-bit value that must fit in a safe integer. */
  u64 (what: string): number {
    const low = this.u32(what)
    const high = this.u32(what)
    if (high > MAX_SAFE_HIGH_WORD) throw new FormatError(`${what} exceeds Number.MAX_SAFE_INTEGER`)
    return high * TWO_POW_32 + low
  }

  /**
   * A copy, so the result does not pin the (possibly large) source buffer.
   * Not `.slice()`: on a Buffer that is a view, not a copy.
   */
  bytes (n: number, what: string): Uint8Array {
    const at = this.#take(n, what)
    return new Uint8Array(this.#bytes.subarray(at, at + n))
  }

  /** A u16-length-prefixed UTF-8 string; invalid UTF-8 is a FormatError. */
  string16 (what: string): string {
    const n = this.u16(what)
    const at = this.#take(n, what)
    try {
      return utf8Decoder.decode(this.#bytes.subarray(at, at + n))
    } catch {
      throw new FormatError(`${what} is not valid UTF-8`)
    }
  }

  rest (what: string): Uint8Array {
    return this.bytes(this.remaining, what)
  }

  /** Every format here is exact: trailing bytes mean the writer and reader disagree. */
  end (what: string): void {
    if (this.remaining !== 0) throw new FormatError(`${this.remaining} unexpected trailing bytes after ${what}`)
  }
}
