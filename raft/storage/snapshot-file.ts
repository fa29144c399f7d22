/**
 * Snapshot files: `snap-<16-digit index>.bin` in the data directory.
 *
 * ```
 * [8 bytes magic "RMSNAP01"][u32 LE crc32(body)][u64 LE body length][body]
 * body: u64 index, u64 term,
 *       u32 voter count, voters (u16 length + UTF-8 each),
 *       u32 learner count, learners (likewise),
 *       data (the rest)
 * ```
 *
 * A snapshot file is written whole to a temporary name, fsynced, renamed
 * into place and the directory fsynced, so it either exists complete or not
 * at all. Damage found later is therefore never a crash artefact, and
 * reading it is an error rather than something to repair.
 */
import { crc32 } from 'node:zlib'
import { join } from 'node:path'
import { CorruptLogError } from '../errors.js'
import type { Snapshot } from '../types.js'
import { ByteReader, ByteWriter, FormatError, utf8 } from './binary.js'
import { pad16, type FileSystem } from './file-system.js'

const MAGIC = Buffer.from('RMSNAP01', 'latin1')
const CRC_OFFSET = MAGIC.length
const LENGTH_OFFSET = CRC_OFFSET + 4
const HEADER_BYTES = LENGTH_OFFSET + 8

const SNAPSHOT_NAME = /^snap-(\d{16})\.bin$/
const TEMP_NAME = /^snap-\d{16}\.bin\.tmp$/

/** The file name of the snapshot at `index`. */
export function snapshotFileName (index: number): string {
  return `snap-${pad16(index)}.bin`
}

/** The index a snapshot file name stands for, or null if it is not one. */
export function parseSnapshotFileName (name: string): number | null {
  const m = SNAPSHOT_NAME.exec(name)
  return m === null ? null : Number(m[1])
}

/** True for a snapshot left half-written by a crash; such a file is never trusted. */
export function isSnapshotTempFileName (name: string): boolean {
  return TEMP_NAME.test(name)
}

/** Encodes a snapshot as the complete bytes of its file. */
export function encodeSnapshotFile (snapshot: Snapshot): Buffer {
  const { index, term, config } = snapshot.meta
  const voters = config.voters.map(utf8)
  const learners = config.learners.map(utf8)
  const idsBytes = [...voters, ...learners].reduce((n, id) => n + 2 + id.length, 0)
  const bodyBytes = 8 + 8 + 4 + 4 + idsBytes + snapshot.data.length
  const w = new ByteWriter(HEADER_BYTES + bodyBytes, HEADER_BYTES).u64(index).u64(term)
  w.u32(voters.length)
  for (const id of voters) w.u16(id.length).raw(id)
  w.u32(learners.length)
  for (const id of learners) w.u16(id.length).raw(id)
  const bytes = w.raw(snapshot.data).finish()
  MAGIC.copy(bytes, 0)
  bytes.writeUInt32LE(crc32(bytes.subarray(HEADER_BYTES)), CRC_OFFSET)
  const header = new ByteWriter(8).u64(bodyBytes).finish()
  header.copy(bytes, LENGTH_OFFSET)
  return bytes
}

/**
 * Writes a snapshot file atomically: temporary file, fsync, rename, fsync of
 * the directory. When this resolves the file survives a crash.
 * @returns the path of the file.
 */
export async function writeSnapshotFile (fs: FileSystem, dir: string, index: number, bytes: Uint8Array): Promise<string> {
  const path = join(dir, snapshotFileName(index))
  const temp = `${path}.tmp`
  const file = await fs.open(temp, 'w')
  try {
    await file.write(bytes, 0)
    await file.sync()
  } finally {
    await file.close()
  }
  await fs.rename(temp, path)
  await fs.syncDir(dir)
  return path
}

/**
 * Reads and verifies a snapshot file.
 * @throws CorruptLogError when it is damaged or does not hold the snapshot its name says.
 */
export async function readSnapshotFile (fs: FileSystem, path: string, expectedIndex: number): Promise<Snapshot> {
  const raw = await fs.readFile(path)
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new CorruptLogError(path, 0, 'not a snapshot file (bad magic or shorter than its header)')
  }
  let bodyBytes: number
  try {
    bodyBytes = new ByteReader(bytes.subarray(LENGTH_OFFSET, HEADER_BYTES)).u64('snapshot body length')
  } catch (err) {
    throw new CorruptLogError(path, LENGTH_OFFSET, (err as Error).message)
  }
  if (HEADER_BYTES + bodyBytes !== bytes.length) {
    throw new CorruptLogError(path, LENGTH_OFFSET, `header says ${bodyBytes} body bytes but the file holds ${bytes.length - HEADER_BYTES}`)
  }
  const body = bytes.subarray(HEADER_BYTES)
  if (crc32(body) !== bytes.readUInt32LE(CRC_OFFSET)) {
    throw new CorruptLogError(path, HEADER_BYTES, 'snapshot checksum mismatch')
  }
  let snapshot: Snapshot
  try {
    snapshot = decodeBody(body)
  } catch (err) {
    if (!(err instanceof FormatError)) throw err
    throw new CorruptLogError(path, HEADER_BYTES, `checksum matches but the snapshot is invalid: ${err.message}`)
  }
  if (snapshot.meta.index !== expectedIndex) {
    throw new CorruptLogError(path, HEADER_BYTES, `file name says index ${expectedIndex} but the snapshot is at ${snapshot.meta.index}`)
  }
  return snapshot
}

function decodeBody (body: Uint8Array): Snapshot {
  const r = new ByteReader(body)
  const index = r.u64('snapshot index')
  const term = r.u64('snapshot term')
  const voters = readIds(r, 'voter')
  const learners = readIds(r, 'learner')
  return { meta: { index, term, config: { voters, learners } }, data: r.rest('snapshot data') }
}

function readIds (r: ByteReader, what: string): string[] {
  const count = r.u32(`${what} count`)
  // Each id takes at least its 2-byte length, so a count beyond that is damage, not data.
  if (count * 2 > r.remaining) throw new FormatError(`${what} count ${count} exceeds the remaining bytes`)
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(r.string16(what))
  return ids
}
