/**
 * A torn WAL tail, as a crash in the middle of the last write leaves it:
 * some bytes of a record that never completed after the newest segment's
 * last whole record. Recovery must cut them off and keep every record
 * before them. Appending (not truncating) is what keeps the fault honest:
 * a record that was fsynced and acknowledged is never taken away, since no
 * disk that honours fsync would do that.
 */
import { appendFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Prng } from '../../sim/prng.js'

const SEGMENT = /^wal-\d{16}\.log$/

/** Appends 1..maxBytes random bytes to the newest WAL segment under `raftDir`; resolves with the file and the count, or null if there is no segment. */
export async function tearWalTail (raftDir: string, rng: Prng, maxBytes = 64): Promise<{ file: string, bytes: number } | null> {
  const names = (await readdir(raftDir).catch(() => [] as string[])).filter(n => SEGMENT.test(n)).sort()
  const newest = names.at(-1)
  if (newest === undefined) return null
  const bytes = rng.int(1, maxBytes)
  const torn = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i++) torn[i] = rng.int(0, 255)
  const file = join(raftDir, newest)
  await appendFile(file, torn)
  return { file, bytes }
}
