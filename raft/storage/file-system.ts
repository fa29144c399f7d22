/**
 * The few file-system operations the WAL and snapshot files use, behind one
 * small interface so that a simulation can run the real storage code on a
 * simulated disk (one that loses unsynced writes in a crash). Production
 * uses {@link nodeFileSystem}.
 *
 * The contract mirrors POSIX as far as durability goes: data written to a
 * file survives a crash only once the file is synced; a created, renamed or
 * deleted name survives only once its directory is synced.
 */
import { fdatasyncSync, writeSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises'

/** An open file. */
export interface StoreFile {
  /** Bytes in the file, as the file system reports them now. */
  size(): Promise<number>
  /**
   * Writes all of `bytes` at `position` into the page cache, synchronously:
   * it takes microseconds, and a threadpool round trip would add latency to
   * every commit.
   */
  writeSync(bytes: Uint8Array, position: number): void
  /** Writes all of `bytes` at `position` without blocking the event loop. */
  write(bytes: Uint8Array, position: number): Promise<void>
  truncate(length: number): Promise<void>
  /** fsync: data, size and metadata. */
  sync(): Promise<void>
  /** fdatasync: data and size, not timestamps (recovery needs no timestamps). */
  datasync(): Promise<void>
  /** fdatasync on the calling thread (see FileLogStoreOptions.fsync). */
  datasyncSync(): void
  close(): Promise<void>
}

/** How a file is opened: `w` create or truncate, `wx` create and fail if it exists, `r+` existing, for update. */
export type OpenMode = 'w' | 'wx' | 'r+'

/** The operations storage needs; see the module comment for the durability rules. */
export interface FileSystem {
  /** Creates the directory and its parents when missing. */
  mkdir(dir: string): Promise<void>
  readdir(dir: string): Promise<string[]>
  readFile(path: string): Promise<Uint8Array>
  open(path: string, mode: OpenMode): Promise<StoreFile>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  /**
   * Flushes a directory's entries (created, renamed or deleted files) to
   * disk. Without it a crash can undo a rename or a new segment even though
   * the file's own data was fsynced.
   */
  syncDir(dir: string): Promise<void>
}

class NodeFile implements StoreFile {
  constructor (private readonly handle: FileHandle) {}

  async size (): Promise<number> {
    return (await this.handle.stat()).size
  }

  writeSync (bytes: Uint8Array, position: number): void {
    // A single write() may be short.
    let done = 0
    while (done < bytes.length) done += writeSync(this.handle.fd, bytes, done, bytes.length - done, position + done)
  }

  async write (bytes: Uint8Array, position: number): Promise<void> {
    let done = 0
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done)
      done += bytesWritten
    }
  }

  async truncate (length: number): Promise<void> {
    await this.handle.truncate(length)
  }

  async sync (): Promise<void> {
    await this.handle.sync()
  }

  async datasync (): Promise<void> {
    await this.handle.datasync()
  }

  datasyncSync (): void {
    fdatasyncSync(this.handle.fd)
  }

  async close (): Promise<void> {
    await this.handle.close()
  }
}

/** The real file system, through node:fs. */
export const nodeFileSystem: FileSystem = {
  async mkdir (dir) {
    await mkdir(dir, { recursive: true })
  },
  readdir: async dir => await readdir(dir),
  readFile: async path => await readFile(path),
  open: async (path, mode) => new NodeFile(await open(path, mode)),
  rename: async (from, to) => { await rename(from, to) },
  unlink: async path => { await unlink(path) },
  async syncDir (dir) {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  }
}

/** A sequence number or index as the fixed-width decimal used in file names, so names sort in order. */
export function pad16 (n: number): string {
  return n.toString().padStart(16, '0')
}
