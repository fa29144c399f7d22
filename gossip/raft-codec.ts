/**
 * Wire codec for Raft messages: msgpack frames, validated field by field
 * before anything reaches the core. A frame that is too large, not msgpack,
 * or not exactly a Raft message is refused with InvalidFrameError.
 */
import { Packr } from 'msgpackr'
import { z } from 'zod'
import type { Message } from '../raft/index.js'
import { checkPlainMsgpack } from './plain-msgpack.js'

/** Largest frame accepted from a peer. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024
const MAX_ID = 256
const MAX_MEMBERS = 1024
const MAX_ENTRIES = 100_000

/** A frame from the network that is not a valid Raft message. */
export class InvalidFrameError extends Error {
  override readonly name = 'InvalidFrameError'
  readonly code = 'ERR_INVALID_FRAME'
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

const id = z.string().min(1).max(MAX_ID)
const n = z.number().int().nonnegative()
const bytes = z.instanceof(Uint8Array)
const envelope = { from: id, to: id, term: n }
const entry = z.strictObject({ index: n, term: n, type: z.union([z.literal(0), z.literal(1), z.literal(2)]), data: bytes })
const config = z.strictObject({ voters: z.array(id).max(MAX_MEMBERS), learners: z.array(id).max(MAX_MEMBERS) })

const schema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.enum(['PreVote', 'Vote']), ...envelope, lastIndex: n, lastTerm: n, force: z.boolean() }),
  z.strictObject({ type: z.enum(['PreVoteResp', 'VoteResp']), ...envelope, reject: z.boolean() }),
  z.strictObject({ type: z.literal('Append'), ...envelope, prevIndex: n, prevTerm: n, entries: z.array(entry).max(MAX_ENTRIES), commit: n }),
  z.strictObject({ type: z.literal('AppendResp'), ...envelope, reject: z.boolean(), index: n, hintIndex: n, hintTerm: n }),
  z.strictObject({ type: z.literal('Heartbeat'), ...envelope, commit: n, readSeq: n, quiesce: z.boolean() }),
  z.strictObject({ type: z.literal('HeartbeatResp'), ...envelope, readSeq: n }),
  z.strictObject({ type: z.literal('Commit'), ...envelope, commit: n }),
  z.strictObject({ type: z.literal('Snapshot'), ...envelope, meta: z.strictObject({ index: n, term: n, config }), offset: n, total: n, chunk: bytes }),
  z.strictObject({ type: z.literal('SnapshotResp'), ...envelope, snapshotIndex: n, offset: n }),
  z.strictObject({ type: z.literal('ReadIndex'), ...envelope, ctx: z.string().max(MAX_ID) }),
  z.strictObject({ type: z.literal('ReadIndexResp'), ...envelope, ctx: z.string().max(MAX_ID), index: z.number().int().min(-1) }),
  z.strictObject({ type: z.literal('TimeoutNow'), ...envelope })
])

const isNat = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isId = (v: unknown): boolean => typeof v === 'string' && v.length >= 1 && v.length <= MAX_ID

function hasExactly (o: Record<string, unknown>, keys: readonly string[]): boolean {
  let n = 0
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue
    n++
    if (!keys.includes(k)) return false
  }
  return n === keys.length
}

function isEntry (e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false
  const o = e as Record<string, unknown>
  return hasExactly(o, ['index', 'term', 'type', 'data']) && isNat(o.index) && isNat(o.term) &&
    (o.type === 0 || o.type === 1 || o.type === 2) && o.data instanceof Uint8Array
}

/** Fields besides type/from/to/term of the messages every write carries, all natural numbers unless listed. */
const HOT: Record<string, { readonly keys: readonly string[], readonly check: (o: Record<string, unknown>) => boolean }> = {
  Append: {
    keys: ['prevIndex', 'prevTerm', 'entries', 'commit'],
    check: o => isNat(o.prevIndex) && isNat(o.prevTerm) && isNat(o.commit) && Array.isArray(o.entries) && o.entries.length <= MAX_ENTRIES && o.entries.every(isEntry)
  },
  AppendResp: { keys: ['reject', 'index', 'hintIndex', 'hintTerm'], check: o => typeof o.reject === 'boolean' && isNat(o.index) && isNat(o.hintIndex) && isNat(o.hintTerm) },
  Heartbeat: { keys: ['commit', 'readSeq', 'quiesce'], check: o => isNat(o.commit) && isNat(o.readSeq) && typeof o.quiesce === 'boolean' },
  HeartbeatResp: { keys: ['readSeq'], check: o => isNat(o.readSeq) },
  Commit: { keys: ['commit'], check: o => isNat(o.commit) }
}
const ENVELOPE = ['type', 'from', 'to', 'term']
const HOT_KEYS = new Map(Object.entries(HOT).map(([type, h]) => [type, [...ENVELOPE, ...h.keys]]))

/**
 * The same rules as the schema for the messages of the write path, checked
 * by hand: zod's parse costs a copy of every message and its entries. Only
 * ever accepts what the schema accepts; anything else goes to the schema,
 * which accepts it or says why not.
 */
export function fastValid (raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false
  const o = raw as Record<string, unknown>
  const hot = typeof o.type === 'string' && Object.hasOwn(HOT, o.type) ? HOT[o.type] : undefined
  if (hot === undefined) return false
  return isId(o.from) && isId(o.to) && isNat(o.term) && hasExactly(o, HOT_KEYS.get(o.type as string) as string[]) && hot.check(o)
}

export function encodeRaftMessage (m: Message): Uint8Array {
  return packr.pack(m)
}

/** Checks a decoded value against the full schema; throws InvalidFrameError naming the first problem. */
export function parseWithSchema (raw: unknown): Message {
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidFrameError(`invalid raft message at ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  return parsed.data as Message
}

/** Decodes and validates one frame; throws InvalidFrameError on anything else. */
export function decodeRaftMessage (frame: Uint8Array): Message {
  if (frame.byteLength > MAX_FRAME_BYTES) throw new InvalidFrameError(`frame of ${frame.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`)
  let raw: unknown
  try {
    checkPlainMsgpack(frame)
    raw = packr.unpack(frame)
  } catch (err) {
    throw new InvalidFrameError(`frame is not msgpack: ${(err as Error).message}`)
  }
  const m = fastValid(raw) ? raw as Message : parseWithSchema(raw)
  if (m.type === 'Append') {
    // Entries must be the contiguous run after prevIndex; the core relies on it.
    m.entries.forEach((e, i) => {
      if (e.index !== m.prevIndex + 1 + i) throw new InvalidFrameError(`append entry ${i} has index ${e.index}, expected ${m.prevIndex + 1 + i}`)
    })
  }
  if (m.type === 'Snapshot' && m.offset + m.chunk.byteLength > m.total) {
    throw new InvalidFrameError('snapshot chunk runs past the declared total')
  }
  return m
}
