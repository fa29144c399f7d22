/**
 * Wire formats of the event bus, msgpack arrays checked before use
 * (ProtocolFrameError otherwise).
 *
 *   event (one channel payload)  [body, signature]
 *   body (what is signed)        [incarnation, seq, topic, payload]
 *   fetch request                [incarnation, from, to]
 *   fetch response               [incarnation, events]   events: consecutive, from the first still held
 *   head response                [incarnation, seq]      the last seq published (0: none yet)
 *
 * The signature covers the publisher's node id and the body bytes, so an
 * event cannot be replayed as another publisher's.
 */
import { Packr } from 'msgpackr'
import { concat } from 'uint8arrays/concat'
import { fromString } from 'uint8arrays/from-string'
import { ProtocolFrameError } from '../../gossip/errors.js'
import { checkPlainMsgpack } from '../../gossip/plain-msgpack.js'
import { MAX_TOPIC_CHARS } from './topic-pattern.js'

const MAX_INCARNATION_CHARS = 64
const MAX_SIGNATURE_BYTES = 1024

export interface SignedEvent {
  readonly body: Uint8Array
  readonly signature: Uint8Array
}

export interface EventBody {
  readonly incarnation: string
  readonly seq: number
  readonly topic: string
  readonly payload: unknown
}

export interface FetchRequest { readonly incarnation: string, readonly from: number, readonly to: number }
export interface FetchResponse { readonly incarnation: string, readonly events: readonly Uint8Array[] }
/**
 * A publisher's answer to "where are you": its last sequence number, and its
 * last one when it saw the asker subscribe (equal to `seq` when it did not
 * recently). A stream new to the asker starts after `since`: what was
 * published after the publisher knew of it is the asker's to get.
 */
export interface Head { readonly incarnation: string, readonly seq: number, readonly since: number }

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

/** The bytes a publisher signs: its node id, a zero byte, the body. */
export function signedBytes (publisher: string, body: Uint8Array): Uint8Array {
  return concat([fromString(publisher), Uint8Array.of(0), body])
}

export function encodeBody (b: EventBody): Uint8Array {
  return packr.pack([b.incarnation, b.seq, b.topic, b.payload])
}

export function decodeBody (data: Uint8Array): EventBody {
  const v = array(unpack(data), 4)
  return { incarnation: incarnation(v[0]), seq: seq(v[1]), topic: topic(v[2]), payload: v[3] }
}

export function encodeSignedEvent (e: SignedEvent): Uint8Array {
  return packr.pack([e.body, e.signature])
}

export function decodeSignedEvent (data: Uint8Array): SignedEvent {
  const v = array(unpack(data, 'plain'), 2)
  const signature = bytes(v[1])
  if (signature.byteLength > MAX_SIGNATURE_BYTES) throw new ProtocolFrameError('signature too long')
  return { body: bytes(v[0]), signature }
}

export function encodeFetchRequest (r: FetchRequest): Uint8Array {
  return packr.pack([r.incarnation, r.from, r.to])
}

export function decodeFetchRequest (data: Uint8Array): FetchRequest {
  const v = array(unpack(data, 'plain'), 3)
  const r = { incarnation: incarnation(v[0]), from: seq(v[1]), to: seq(v[2]) }
  if (r.to < r.from) throw new ProtocolFrameError('empty fetch range')
  return r
}

export function encodeFetchResponse (r: FetchResponse): Uint8Array {
  return packr.pack([r.incarnation, r.events])
}

export function decodeFetchResponse (data: Uint8Array): FetchResponse {
  const v = array(unpack(data, 'plain'), 2)
  if (!Array.isArray(v[1])) throw new ProtocolFrameError('expected a list of events')
  return { incarnation: incarnation(v[0]), events: v[1].map(bytes) }
}

export function encodeHead (h: Head): Uint8Array {
  return packr.pack([h.incarnation, h.seq, h.since])
}

export function decodeHead (data: Uint8Array): Head {
  const v = array(unpack(data, 'plain'), 3)
  for (const x of [v[1], v[2]]) if (x !== 0) seq(x)
  if ((v[2] as number) > (v[1] as number)) throw new ProtocolFrameError('a head\'s since is after its seq')
  return { incarnation: incarnation(v[0]), seq: v[1] as number, since: v[2] as number }
}

/** `plain`: the format has no extension anywhere (all but the body, whose payload is the application's). */
function unpack (data: Uint8Array, plain?: 'plain'): unknown {
  try {
    if (plain !== undefined) checkPlainMsgpack(data)
    return packr.unpack(data)
  } catch (err) {
    throw new ProtocolFrameError(`not msgpack: ${(err as Error).message.slice(0, 100)}`)
  }
}

function array (x: unknown, n: number): unknown[] {
  if (!Array.isArray(x) || x.length !== n) throw new ProtocolFrameError(`expected an array of ${n}`)
  return x
}

function bytes (x: unknown): Uint8Array {
  if (!(x instanceof Uint8Array)) throw new ProtocolFrameError('expected bytes')
  return x
}

function seq (x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) throw new ProtocolFrameError('bad sequence number')
  return x
}

function incarnation (x: unknown): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_INCARNATION_CHARS) throw new ProtocolFrameError('bad incarnation')
  return x
}

function topic (x: unknown): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_TOPIC_CHARS) throw new ProtocolFrameError('bad topic')
  return x
}
