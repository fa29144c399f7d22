/**
 * WAL segment files: `wal-<16-digit sequence number>.log`, numbered without
 * gaps. Only the newest (active) segment is ever appended to; a segment is
 * fsynced before the next one is created, so every older segment is sealed
 * and complete.
 */
import { join } from 'node:path'
import { assertNever } from '../assert-never.js'
import { CorruptLogError } from '../errors.js'
import { decodeWal, type DecodedRecord } from './wal-codec.js'
import { pad16, type FileSystem, type StoreFile } from './file-system.js'

const SEGMENT_NAME = /^wal-(\d{16})\.log$/

/** The file name of segment `seq`. */
export function segmentFileName (seq: number): string {
  return `wal-${pad16(seq)}.log`
}

/** The sequence number a segment file name stands for, or null if it is not one. */
export function parseSegmentFileName (name: string): number | null {
  const m = SEGMENT_NAME.exec(name)
  return m === null ? null : Number(m[1])
}

/** What a segment holds, as far as recovery is concerned. */
export interface SegmentContents {
  readonly records: DecodedRecord[]
  /** Bytes in the file. */
  readonly size: number
  /** Length of the valid prefix, when a torn tail follows it. */
  readonly tornAt: { readonly offset: number, readonly reason: string } | null
}

/**
 * Reads and decodes a whole segment. Only the active segment may end in a
 * torn tail (a crash during its last write); in a sealed segment, which was
 * fsynced before its successor existed, a tear means acknowledged data is
 * damaged.
 * @throws CorruptLogError naming the file and the offset of the damage.
 */
export async function readSegment (fs: FileSystem, path: string, active: boolean): Promise<SegmentContents> {
  const bytes = await fs.readFile(path)
  const { records, end } = decodeWal(bytes)
  switch (end.kind) {
    case 'clean':
      return { records, size: bytes.length, tornAt: null }
    case 'corrupt':
      throw new CorruptLogError(path, end.offset, end.reason)
    case 'torn':
      if (!active) {
        throw new CorruptLogError(path, end.offset, `${end.reason}; only the newest segment may end in a torn write`)
      }
      return { records, size: bytes.length, tornAt: { offset: end.offset, reason: end.reason } }
    default:
      return assertNever(end, 'end of a WAL segment')
  }
}

/** An open segment that records are appended to. */
export class SegmentWriter {
  readonly seq: number
  readonly path: string
  readonly #file: StoreFile
  #size: number

  private constructor (seq: number, path: string, file: StoreFile, size: number) {
    this.seq = seq
    this.path = path
    this.#file = file
    this.#size = size
  }

  /**
   * Creates segment `seq` (failing if it exists) and makes its directory
   * entry durable, so records acknowledged in it cannot vanish with the file.
   */
  static async create (fs: FileSystem, dir: string, seq: number): Promise<SegmentWriter> {
    const path = join(dir, segmentFileName(seq))
    const file = await fs.open(path, 'wx')
    try {
      await fs.syncDir(dir)
    } catch (err) {
      await file.close()
      throw err
    }
    return new SegmentWriter(seq, path, file, 0)
  }

  /**
   * Opens an existing segment to append to, first cutting off (durably)
   * everything from `tornAt` on when recovery found a torn tail there.
   */
  static async resume (fs: FileSystem, dir: string, seq: number, tornAt: number | null): Promise<SegmentWriter> {
    const path = join(dir, segmentFileName(seq))
    const file = await fs.open(path, 'r+')
    try {
      if (tornAt !== null) {
        await file.truncate(tornAt)
        await file.sync()
        return new SegmentWriter(seq, path, file, tornAt)
      }
      return new SegmentWriter(seq, path, file, await file.size())
    } catch (err) {
      await file.close()
      throw err
    }
  }

  /** Bytes in the segment, including appended but not yet synced ones. */
  get size (): number {
    return this.#size
  }

  /** Writes into the page cache (StoreFile.writeSync); only the fdatasync below waits for the disk. */
  async append (bytes: Uint8Array): Promise<void> {
    this.#file.writeSync(bytes, this.#size)
    this.#size += bytes.length
  }

  /**
   * fdatasync: flushes the data and the file size (which an append changes)
   * but skips timestamps, which recovery does not need. `inline` flushes on
   * the calling thread instead of a libuv worker.
   */
  async sync (inline = false): Promise<void> {
    if (inline) this.#file.datasyncSync()
    else await this.#file.datasync()
  }

  async close (): Promise<void> {
    await this.#file.close()
  }
}
