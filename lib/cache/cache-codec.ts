/**
 * Wire formats of the caches, each a msgpack array checked element by
 * element before use (ProtocolFrameError otherwise).
 *
 * Gossip updates, one per channel payload (the channel batches them):
 *   ['s', key, value, ms, c, node]   replicated set
 *   ['d', key, ms, c, node]          replicated delete
 *   ['c', ms, c, node]               replicated clear
 *   ['i', key]                       invalidate one key
 *   ['x']                            invalidate all
 *
 * Anti-entropy calls (replicated mode):
 *   sync request   [digest, floor]                  floor: [ms, c, node] | null
 *   sync response  [floor, buckets, entries, more]  buckets: the differing ones
 *   push           [floor, entries]
 *   entry          [key, value | null, ms, c, node] (null value: a tombstone)
 */
import { Packr } from 'msgpackr'
import { ProtocolFrameError } from '../../gossip/errors.js'
import { checkPlainMsgpack } from '../../gossip/plain-msgpack.js'
import { DIGEST_BYTES } from './digest.js'
import type { Hlc } from './hlc.js'

/** Longest node id in a timestamp (as gossip/channel-codec.ts allows for publishers). */
const MAX_NODE_CHARS = 256

export type CacheUpdate =
  | { readonly op: 'set', readonly key: Uint8Array, readonly value: Uint8Array, readonly hlc: Hlc }
  | { readonly op: 'delete', readonly key: Uint8Array, readonly hlc: Hlc }
  | { readonly op: 'clear', readonly hlc: Hlc }
  | { readonly op: 'invalidate', readonly key: Uint8Array }
  | { readonly op: 'invalidate-all' }

export interface WireEntry {
  readonly key: Uint8Array
  /** null: a tombstone. */
  readonly value: Uint8Array | null
  readonly hlc: Hlc
}

export interface SyncRequest { readonly digest: Uint8Array, readonly floor: Hlc | null }
export interface SyncResponse { readonly floor: Hlc | null, readonly buckets: readonly number[], readonly entries: readonly WireEntry[], readonly more: boolean }
export interface SyncPush { readonly floor: Hlc | null, readonly entries: readonly WireEntry[] }

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

export function encodeUpdate (u: CacheUpdate): Uint8Array {
  switch (u.op) {
    case 'set': return packr.pack(['s', u.key, u.value, u.hlc.ms, u.hlc.c, u.hlc.node])
    case 'delete': return packr.pack(['d', u.key, u.hlc.ms, u.hlc.c, u.hlc.node])
    case 'clear': return packr.pack(['c', u.hlc.ms, u.hlc.c, u.hlc.node])
    case 'invalidate': return packr.pack(['i', u.key])
    case 'invalidate-all': return packr.pack(['x'])
  }
}

export function decodeUpdate (data: Uint8Array): CacheUpdate {
  const v = array(unpack(data))
  switch (v[0]) {
    case 's': return length(v, 6) && { op: 'set', key: bytes(v[1]), value: bytes(v[2]), hlc: hlcAt(v, 3) }
    case 'd': return length(v, 5) && { op: 'delete', key: bytes(v[1]), hlc: hlcAt(v, 2) }
    case 'c': return length(v, 4) && { op: 'clear', hlc: hlcAt(v, 1) }
    case 'i': return length(v, 2) && { op: 'invalidate', key: bytes(v[1]) }
    case 'x': return length(v, 1) && { op: 'invalidate-all' }
    default: throw new ProtocolFrameError('unknown cache update')
  }
}

export function encodeSyncRequest (r: SyncRequest): Uint8Array {
  return packr.pack([r.digest, hlcOut(r.floor)])
}

export function decodeSyncRequest (data: Uint8Array): SyncRequest {
  const v = array(unpack(data))
  length(v, 2)
  const digest = bytes(v[0])
  if (digest.byteLength !== DIGEST_BYTES) throw new ProtocolFrameError(`digest of ${digest.byteLength} bytes, expected ${DIGEST_BYTES}`)
  return { digest, floor: hlcIn(v[1]) }
}

export function encodeSyncResponse (r: SyncResponse): Uint8Array {
  return packr.pack([hlcOut(r.floor), r.buckets, r.entries.map(entryOut), r.more])
}

export function decodeSyncResponse (data: Uint8Array): SyncResponse {
  const v = array(unpack(data))
  length(v, 4)
  const buckets = array(v[1]).map(b => {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0) throw new ProtocolFrameError('bad bucket')
    return b
  })
  if (typeof v[3] !== 'boolean') throw new ProtocolFrameError('bad more flag')
  return { floor: hlcIn(v[0]), buckets, entries: array(v[2]).map(entryIn), more: v[3] }
}

export function encodeSyncPush (p: SyncPush): Uint8Array {
  return packr.pack([hlcOut(p.floor), p.entries.map(entryOut)])
}

export function decodeSyncPush (data: Uint8Array): SyncPush {
  const v = array(unpack(data))
  length(v, 2)
  return { floor: hlcIn(v[0]), entries: array(v[1]).map(entryIn) }
}

function entryOut (e: WireEntry): unknown[] {
  return [e.key, e.value, e.hlc.ms, e.hlc.c, e.hlc.node]
}

function entryIn (x: unknown): WireEntry {
  const v = array(x)
  length(v, 5)
  return { key: bytes(v[0]), value: v[1] === null ? null : bytes(v[1]), hlc: hlcAt(v, 2) }
}

function hlcOut (h: Hlc | null): unknown[] | null {
  return h === null ? null : [h.ms, h.c, h.node]
}

function hlcIn (x: unknown): Hlc | null {
  if (x === null) return null
  const v = array(x)
  length(v, 3)
  return hlcAt(v, 0)
}

function hlcAt (v: unknown[], i: number): Hlc {
  const [ms, c, node] = [v[i], v[i + 1], v[i + 2]]
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) throw new ProtocolFrameError('bad timestamp milliseconds')
  if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 0) throw new ProtocolFrameError('bad timestamp counter')
  if (typeof node !== 'string' || node.length === 0 || node.length > MAX_NODE_CHARS) throw new ProtocolFrameError('bad timestamp node')
  return { ms, c, node }
}

function unpack (data: Uint8Array): unknown {
  try {
    // Keys and values travel as byte strings: no format here has an extension.
    checkPlainMsgpack(data)
    return packr.unpack(data)
  } catch (err) {
    throw new ProtocolFrameError(`not msgpack: ${(err as Error).message.slice(0, 100)}`)
  }
}

function array (x: unknown): unknown[] {
  if (!Array.isArray(x)) throw new ProtocolFrameError('expected an array')
  return x
}

/** Always true, so a length check can lead an `&&` chain. */
function length (v: unknown[], n: number): true {
  if (v.length !== n) throw new ProtocolFrameError(`${v.length} elements, expected ${n}`)
  return true
}

function bytes (x: unknown): Uint8Array {
  if (!(x instanceof Uint8Array)) throw new ProtocolFrameError('expected bytes')
  return x
}
