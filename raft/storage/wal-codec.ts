/**
 * Write-ahead log record format and the decoder that tells a torn tail from
 * corruption.
 *
 * A record on disk is a frame:
 *
 * ```
 * [u32 LE body length][u32 LE crc32(body)][body]
 * ```
 *
 * and the body starts with a record kind byte:
 *
 * - `1` entry:     u64 index, u64 term, u8 entry type, then the data (the rest of the body)
 * - `2` hardState: u64 term, u64 commit, u8 hasVote, [u16 length + UTF-8 vote]
 * - `3` snapshot:  u64 index, u64 term, u8 discardLog; marks where a snapshot
 *                  replaced the log prefix (see wal-replay.ts)
 * - `4` segmentStart: u64 seq, u64 lastIndex, u64 lastTerm; first record of
 *                  every segment: its number and where the log ended when it
 *                  began, so a sealed segment that lost its end is detected
 *
 * Integers are little-endian; u64 fields hold safe integers only.
 *
 * Torn versus corrupt. A crash while a write is in flight can leave the end
 * of the file damaged: a partial frame, a frame whose checksum does not
 * match (the file grew but the data blocks did not land), or zeroes. None of
 * that data was acknowledged, because acknowledgement waits for fsync. Bit
 * rot or a bug, in contrast, can damage a record that was acknowledged,
 * and dropping it silently would lose committed state. So when the frame at
 * offset X is bad (short header, length 0 or above
 * {@link MAX_RECORD_BODY_BYTES}, running past the end, or a checksum
 * mismatch), the decoder looks for any complete frame with a valid checksum
 * starting after X:
 *
 * - none: everything from X on is a torn tail ({@link WalEnd} `torn`), to be
 *   truncated;
 * - one: acknowledged data may follow the damage, so it is corruption at X.
 *
 * A frame whose checksum matches but whose body does not parse (unknown
 * kind, wrong size) is always corruption: the bytes are exactly what some
 * writer wrote, so this is a bug or a format from another version, never a
 * crash artefact.
 *
 * The cost of that rule: if a torn final record's data happens to contain a
 * complete, checksummed frame, recovery refuses to start instead of
 * truncating; so it does if the data after the damage is so full of
 * header-like bytes that checking them all would cost more than a few passes
 * over it. Both fail safe (an operator decides), never silently.
 */
import { crc32 } from 'node:zlib'
import { assertNever } from '../assert-never.js'
import type { Entry, EntryType, HardState } from '../types.js'
import { ByteReader, ByteWriter, FormatError, utf8 } from './binary.js'

/** Bytes of the length and checksum words in front of every record body. */
export const RECORD_HEADER_BYTES = 8
/** Largest body a record may have; a larger length field is damage, not data. */
export const MAX_RECORD_BODY_BYTES = 64 * 1024 * 1024
/** Kind byte, index, term and entry type in front of an entry's data. */
const ENTRY_FIXED_BYTES = 1 + 8 + 8 + 1
/** Largest `Entry.data` that fits in one record. */
export const MAX_ENTRY_DATA_BYTES = MAX_RECORD_BODY_BYTES - ENTRY_FIXED_BYTES
/** Largest vote (node id) in UTF-8 bytes; it is stored with a u16 length. */
export const MAX_VOTE_BYTES = 0xffff

const KIND_ENTRY = 1
const KIND_HARD_STATE = 2
const KIND_SNAPSHOT = 3
const KIND_SEGMENT_START = 4

/** One logical record of the write-ahead log. */
export type WalRecord =
  | { readonly kind: 'entry', readonly entry: Entry }
  | { readonly kind: 'hardState', readonly hardState: HardState }
  /**
   * A snapshot at `index`/`term` replaced the log prefix. `discardLog` is
   * true when the whole log was thrown away at that point (the snapshot did
   * not match the stored entry at `index`).
   */
  | { readonly kind: 'snapshot', readonly index: number, readonly term: number, readonly discardLog: boolean }
  /** Opens segment `seq`; the log's last entry (or snapshot) was `lastIndex`/`lastTerm` at that point. */
  | { readonly kind: 'segmentStart', readonly seq: number, readonly lastIndex: number, readonly lastTerm: number }

/** A record found by {@link decodeWal}, with its frame's place in the buffer. */
export interface DecodedRecord {
  /** Byte offset of the frame (its length word). */
  readonly offset: number
  /** Bytes of the whole frame, header included. */
  readonly size: number
  readonly record: WalRecord
}

/** How a decoded buffer ended. */
export type WalEnd =
  | { readonly kind: 'clean' }
  /** Damage at `offset` with nothing valid after it: truncate there. */
  | { readonly kind: 'torn', readonly offset: number, readonly reason: string }
  /** Damage at `offset` that recovery must not guess about. */
  | { readonly kind: 'corrupt', readonly offset: number, readonly reason: string }

/** Every valid record before the end, and the end. */
export interface WalDecodeResult {
  readonly records: DecodedRecord[]
  readonly end: WalEnd
}

/** Encodes one record as a complete frame, ready to append to a segment. */
export function encodeRecord (record: WalRecord): Buffer {
  switch (record.kind) {
    case 'entry': {
      const { entry } = record
      return frame(new ByteWriter(RECORD_HEADER_BYTES + ENTRY_FIXED_BYTES + entry.data.length, RECORD_HEADER_BYTES)
        .u8(KIND_ENTRY).u64(entry.index).u64(entry.term).u8(entry.type).raw(entry.data))
    }
    case 'hardState': {
      const { term, commit, vote } = record.hardState
      const voteBytes = vote === null ? null : utf8(vote)
      const size = 1 + 8 + 8 + 1 + (voteBytes === null ? 0 : 2 + voteBytes.length)
      const w = new ByteWriter(RECORD_HEADER_BYTES + size, RECORD_HEADER_BYTES)
        .u8(KIND_HARD_STATE).u64(term).u64(commit)
      if (voteBytes === null) w.u8(0)
      else w.u8(1).u16(voteBytes.length).raw(voteBytes)
      return frame(w)
    }
    case 'snapshot':
      return frame(new ByteWriter(RECORD_HEADER_BYTES + 1 + 8 + 8 + 1, RECORD_HEADER_BYTES)
        .u8(KIND_SNAPSHOT).u64(record.index).u64(record.term).u8(record.discardLog ? 1 : 0))
    case 'segmentStart':
      return frame(new ByteWriter(RECORD_HEADER_BYTES + 1 + 8 + 8 + 8, RECORD_HEADER_BYTES)
        .u8(KIND_SEGMENT_START).u64(record.seq).u64(record.lastIndex).u64(record.lastTerm))
    default:
      return assertNever(record, 'WAL record')
  }
}

/** Fills in the length and checksum words in front of a written body. */
function frame (w: ByteWriter): Buffer {
  const bytes = w.finish()
  const body = bytes.subarray(RECORD_HEADER_BYTES)
  bytes.writeUInt32LE(body.length, 0)
  bytes.writeUInt32LE(crc32(body), 4)
  return bytes
}

/**
 * Parses a record body whose checksum already matched.
 * @throws FormatError when the body is not a well-formed record.
 */
export function decodeBody (body: Uint8Array): WalRecord {
  const r = new ByteReader(body)
  const kind = r.u8('record kind')
  switch (kind) {
    case KIND_ENTRY: {
      const index = r.u64('entry index')
      const term = r.u64('entry term')
      const type = r.u8('entry type')
      if (type !== 0 && type !== 1 && type !== 2) throw new FormatError(`unknown entry type ${type}`)
      const data = r.rest('entry data')
      return { kind: 'entry', entry: { index, term, type: type as EntryType, data } }
    }
    case KIND_HARD_STATE: {
      const term = r.u64('hard state term')
      const commit = r.u64('hard state commit')
      const hasVote = r.u8('hard state vote flag')
      if (hasVote > 1) throw new FormatError(`hard state vote flag is ${hasVote}`)
      const vote = hasVote === 1 ? r.string16('hard state vote') : null
      r.end('hard state')
      return { kind: 'hardState', hardState: { term, vote, commit } }
    }
    case KIND_SNAPSHOT: {
      const index = r.u64('snapshot index')
      const term = r.u64('snapshot term')
      const discard = r.u8('snapshot discard flag')
      if (discard > 1) throw new FormatError(`snapshot discard flag is ${discard}`)
      r.end('snapshot marker')
      return { kind: 'snapshot', index, term, discardLog: discard === 1 }
    }
    case KIND_SEGMENT_START: {
      const seq = r.u64('segment number')
      const lastIndex = r.u64('segment start index')
      const lastTerm = r.u64('segment start term')
      r.end('segment start')
      return { kind: 'segmentStart', seq, lastIndex, lastTerm }
    }
    default:
      throw new FormatError(`unknown record kind ${kind}`)
  }
}

type FrameCheck = { readonly ok: true, readonly end: number } | { readonly ok: false, readonly reason: string }

/** Checks the frame at `offset` is complete and its checksum matches. */
function checkFrame (buf: Uint8Array, offset: number): FrameCheck {
  if (buf.length - offset < RECORD_HEADER_BYTES) {
    return { ok: false, reason: `incomplete record header (${buf.length - offset} bytes before end of file)` }
  }
  const view = new DataView(buf.buffer, buf.byteOffset + offset, RECORD_HEADER_BYTES)
  const length = view.getUint32(0, true)
  if (length === 0) return { ok: false, reason: 'record length is zero' }
  if (length > MAX_RECORD_BODY_BYTES) {
    return { ok: false, reason: `record length ${length} exceeds the ${MAX_RECORD_BODY_BYTES}-byte limit` }
  }
  const end = offset + RECORD_HEADER_BYTES + length
  if (end > buf.length) return { ok: false, reason: `record of ${length} bytes runs past end of file` }
  if (crc32(buf.subarray(offset + RECORD_HEADER_BYTES, end)) !== view.getUint32(4, true)) {
    return { ok: false, reason: 'checksum mismatch' }
  }
  return { ok: true, end }
}

/** The high 32-bit word of Number.MAX_SAFE_INTEGER: a u64 field above it never decodes. */
const MAX_SAFE_HIGH_WORD = 0x1fffff

/**
 * Cheap necessary conditions for a body this writer produced: a known kind,
 * a length that kind can have, u64 fields that fit a safe integer, small
 * enums in range. Lets the resync scan skip the checksum at almost every
 * position of arbitrary data.
 */
function plausibleBody (view: DataView, body: number, length: number): boolean {
  const safe = (at: number): boolean => view.getUint32(body + at + 4, true) <= MAX_SAFE_HIGH_WORD
  switch (view.getUint8(body)) {
    case KIND_ENTRY: return length >= ENTRY_FIXED_BYTES && safe(1) && safe(9) && view.getUint8(body + 17) <= 2
    case KIND_HARD_STATE: return length >= 18 && safe(1) && safe(9) && view.getUint8(body + 17) <= 1
    case KIND_SNAPSHOT: return length === 18 && safe(1) && safe(9) && view.getUint8(body + 17) <= 1
    case KIND_SEGMENT_START: return length === 25 && safe(1) && safe(9) && safe(17)
    default: return false
  }
}

/** Result of looking for a valid frame after damage. */
type Resync = { readonly kind: 'found', readonly offset: number } | { readonly kind: 'none' } | { readonly kind: 'exhausted' }

/**
 * Offset of the first complete, checksummed, plausible frame after
 * `offset`. Checksumming is bounded (a few times the bytes scanned): data
 * crafted to look like headers everywhere must not stall recovery, and when
 * the budget runs out the answer is "could not rule it out" (exhausted).
 */
function nextValidFrame (buf: Uint8Array, offset: number): Resync {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let budget = 4 * (buf.length - offset) + (1 << 20)
  // A frame needs its header and, for the smallest kinds, 18 body bytes.
  for (let p = offset + 1; p + RECORD_HEADER_BYTES + 18 <= buf.length; p++) {
    const length = view.getUint32(p, true)
    const body = p + RECORD_HEADER_BYTES
    if (length < 18 || length > MAX_RECORD_BODY_BYTES || body + length > buf.length || !plausibleBody(view, body, length)) continue
    budget -= length
    if (budget < 0) return { kind: 'exhausted' }
    if (crc32(buf.subarray(body, body + length)) === view.getUint32(p + 4, true)) return { kind: 'found', offset: p }
  }
  return { kind: 'none' }
}

/**
 * Decodes every record in a segment's bytes and classifies how they end
 * (see the module comment for the torn-versus-corrupt rule). Never throws:
 * the caller turns a `corrupt` end, or a `torn` end where no tear is
 * allowed, into a CorruptLogError naming its file.
 */
export function decodeWal (buf: Uint8Array): WalDecodeResult {
  const records: DecodedRecord[] = []
  let offset = 0
  while (offset < buf.length) {
    const check = checkFrame(buf, offset)
    if (!check.ok) {
      const next = nextValidFrame(buf, offset)
      const end: WalEnd = next.kind === 'none'
        ? { kind: 'torn', offset, reason: check.reason }
        : { kind: 'corrupt', offset, reason: next.kind === 'found'
            ? `${check.reason}, and a valid record follows at offset ${next.offset}`
            : `${check.reason}, and too much of what follows looks like records to rule out valid data` }
      return { records, end }
    }
    let record: WalRecord
    try {
      record = decodeBody(buf.subarray(offset + RECORD_HEADER_BYTES, check.end))
    } catch (err) {
      if (!(err instanceof FormatError)) throw err
      return { records, end: { kind: 'corrupt', offset, reason: `checksum matches but the record is invalid: ${err.message}` } }
    }
    records.push({ offset, size: check.end - offset, record })
    offset = check.end
  }
  return { records, end: { kind: 'clean' } }
}
