/**
 * The few filesystem steps durability depends on, in one place so that every
 * writer follows them the same way.
 */
import { writeSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'

/**
 * Flushes a directory's entries (created, renamed or deleted files) to disk.
 * Without it a crash can undo a rename or a new segment even though the
 * file's own data was fsynced.
 */
export async function fsyncDir (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes all of `bytes` at `position`; a single write() may be short. */
export async function writeAll (handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done)
    done += bytesWritten
  }
}

/** writeAll for the hot path: a plain write(2) into the page cache. */
export function writeAllSync (fd: number, bytes: Uint8Array, position: number): void {
  let done = 0
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done)
}

/** A sequence number or index as the fixed-width decimal used in file names, so names sort in order. */
export function pad16 (n: number): string {
  return n.toString().padStart(16, '0')
}
