/**
 * The wire format of a gossip channel message: one gossipsub message holds
 * a batch of payloads from one publisher with consecutive sequence numbers.
 *
 *   u8 version | uvarint len, publisher | uvarint len, incarnation | uvarint firstSeq
 *     | uvarint count, (uvarint len, receiver, uvarint start) * count | msgpack [bin, ...]
 *
 * The starts tell receivers that subscribed recently where their share of
 * this publisher's stream begins (see ChannelBatch.starts).
 *
 * The header up to firstSeq identifies the batch, so the gossipsub message
 * id is the topic plus those header bytes: cheap to compute, and two
 * publishes never collide while the seen-cache still deduplicates the
 * copies gossipsub delivers along several mesh paths.
 */
import { createHash } from 'node:crypto'
import { Packr } from 'msgpackr'
import { ProtocolFrameError } from './errors.js'
import { readUvarint, uvarint } from './length-prefix.js'
import { checkPlainMsgpack } from './plain-msgpack.js'

export const CHANNEL_FRAME_VERSION = 2
/** Receivers' starts one batch may carry. */
export const MAX_BATCH_STARTS = 64
const MAX_PUBLISHER_BYTES = 256
const MAX_INCARNATION_BYTES = 64
/** Largest batch a receiver decodes. */
export const MAX_CHANNEL_MESSAGE_BYTES = 1024 * 1024
export const MAX_BATCH_ITEMS = 10_000

export interface ChannelBatch {
  /** The publishing node's id. */
  readonly publisher: string
  /** Random per start of the publisher: its sequence numbers restart at 1 with each incarnation. */
  readonly incarnation: string
  /** Sequence number of items[0]; the rest follow consecutively. */
  readonly firstSeq: number
  /**
   * Receivers whose subscription the publisher learned recently, each with
   * the first sequence number published after it did: everything from there
   * on reached (or was owed to) that receiver. A receiver hearing this
   * publisher for the first time starts there, so a lost first batch is a
   * gap rather than a silent new baseline.
   */
  readonly starts?: ReadonlyArray<readonly [receiver: string, start: number]>
  readonly items: readonly Uint8Array[]
}

const packr = new Packr({ useRecords: false, moreTypes: false })
const enc = new TextEncoder()
// A leading U+FEFF is part of the string (a node id, say), not a byte-order mark to drop.
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function header (b: Omit<ChannelBatch, 'items'>): Uint8Array {
  const pub = enc.encode(b.publisher)
  const inc = enc.encode(b.incarnation)
  const starts = b.starts ?? []
  if (starts.length > MAX_BATCH_STARTS) throw new ProtocolFrameError(`a batch carries at most ${MAX_BATCH_STARTS} starts, got ${starts.length}`)
  const parts = [Uint8Array.of(CHANNEL_FRAME_VERSION), uvarint(pub.byteLength), pub, uvarint(inc.byteLength), inc, uvarint(b.firstSeq), uvarint(starts.length)]
  for (const [receiver, start] of starts) {
    const r = enc.encode(receiver)
    parts.push(uvarint(r.byteLength), r, uvarint(start))
  }
  return Buffer.concat(parts)
}

export function encodeChannelBatch (b: ChannelBatch): Uint8Array {
  return Buffer.concat([header(b), packr.pack(b.items)])
}

interface Header {
  readonly publisher: string
  readonly incarnation: string
  readonly firstSeq: number
  readonly starts: ReadonlyArray<readonly [string, number]>
  /** Where the body starts. */
  readonly end: number
}

function readString (data: Uint8Array, offset: number, max: number, what: string): [string, number] {
  const [len, start] = readUvarint(data, offset)
  if (len < 1 || len > max || start + len > data.byteLength) throw new ProtocolFrameError(`${what} length ${len} is out of range`)
  return [dec.decode(data.subarray(start, start + len)), start + len]
}

function readHeader (data: Uint8Array): Header {
  try {
    if (data.byteLength < 1 || data[0] !== CHANNEL_FRAME_VERSION) throw new ProtocolFrameError(`unknown channel frame version ${data[0]}`)
    const [publisher, a] = readString(data, 1, MAX_PUBLISHER_BYTES, 'publisher')
    const [incarnation, b] = readString(data, a, MAX_INCARNATION_BYTES, 'incarnation')
    const [firstSeq, c] = readUvarint(data, b)
    if (firstSeq < 1) throw new ProtocolFrameError('sequence numbers start at 1')
    const [count, startsAt] = readUvarint(data, c)
    let end = startsAt
    if (count > MAX_BATCH_STARTS) throw new ProtocolFrameError(`${count} starts exceed ${MAX_BATCH_STARTS}`)
    const starts: Array<[string, number]> = []
    for (let i = 0; i < count; i++) {
      const [receiver, d] = readString(data, end, MAX_PUBLISHER_BYTES, 'receiver')
      const [start, e] = readUvarint(data, d)
      if (start < 1 || start > firstSeq) throw new ProtocolFrameError(`a start of ${start} is outside 1..${firstSeq}`)
      starts.push([receiver, start])
      end = e
    }
    return { publisher, incarnation, firstSeq, starts, end }
  } catch (err) {
    if (err instanceof ProtocolFrameError) throw err
    throw new ProtocolFrameError(`malformed channel header: ${(err as Error).message}`)
  }
}

/** Decodes and validates one channel message; throws ProtocolFrameError otherwise. */
export function decodeChannelBatch (data: Uint8Array, maxBytes = MAX_CHANNEL_MESSAGE_BYTES): ChannelBatch {
  if (data.byteLength > maxBytes) throw new ProtocolFrameError(`channel message of ${data.byteLength} bytes exceeds ${maxBytes}`)
  const h = readHeader(data)
  let items: unknown
  try {
    const body = data.subarray(h.end)
    checkPlainMsgpack(body)
    items = packr.unpack(body)
  } catch (err) {
    throw new ProtocolFrameError(`channel body is not msgpack: ${(err as Error).message}`)
  }
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH_ITEMS) throw new ProtocolFrameError('channel body must be a non-empty array of payloads')
  for (const it of items) if (!(it instanceof Uint8Array)) throw new ProtocolFrameError('channel payloads must be byte strings')
  if (!Number.isSafeInteger(h.firstSeq + items.length)) throw new ProtocolFrameError('sequence number overflow')
  return { publisher: h.publisher, incarnation: h.incarnation, firstSeq: h.firstSeq, starts: h.starts, items: items as Uint8Array[] }
}

/**
 * The gossipsub message id (`msgIdFn`): topic and batch header. A message
 * whose header does not parse gets a content hash, so it is still
 * deduplicated, and the channel then drops it as malformed.
 */
export function channelMessageId (msg: { readonly topic: string, readonly data: Uint8Array }): Uint8Array {
  const topic = enc.encode(msg.topic)
  try {
    const h = readHeader(msg.data)
    return Buffer.concat([topic, Uint8Array.of(0), msg.data.subarray(0, h.end)])
  } catch {
    return Buffer.concat([topic, Uint8Array.of(1), createHash('sha256').update(msg.data).digest()])
  }
}
