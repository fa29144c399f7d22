/**
 * What a FileLogStore data directory holds, by file name: WAL segments,
 * snapshot files and temporary files left by a crash. Other files are
 * ignored, so the directory can be shared (the peer key lives there too).
 */
import { join } from 'node:path'
import { CorruptLogError } from '../errors.js'
import type { FileSystem } from './file-system.js'
import { parseSegmentFileName, segmentFileName } from './wal-segment.js'
import { isSnapshotTempFileName, parseSnapshotFileName } from './snapshot-file.js'

/** The storage files of a data directory. */
export interface DataDirContents {
  /** Segment sequence numbers, ascending and without gaps. */
  readonly segments: number[]
  /** Index of the newest snapshot file, 0 if there is none. */
  readonly newestSnapshot: number
  /** Paths of half-written snapshot files, never to be trusted. */
  readonly tempFiles: string[]
}

/**
 * Lists the data directory (creating it if missing).
 * @throws CorruptLogError naming the first missing segment when the numbers have a gap.
 */
export async function scanDataDir (fs: FileSystem, dir: string): Promise<DataDirContents> {
  await fs.mkdir(dir)
  const segments: number[] = []
  const tempFiles: string[] = []
  let newestSnapshot = 0
  for (const name of await fs.readdir(dir)) {
    const seq = parseSegmentFileName(name)
    const index = parseSnapshotFileName(name)
    if (seq !== null) segments.push(seq)
    else if (index !== null) newestSnapshot = Math.max(newestSnapshot, index)
    else if (isSnapshotTempFileName(name)) tempFiles.push(join(dir, name))
  }
  segments.sort((a, b) => a - b)
  for (let i = 1; i < segments.length; i++) {
    if (segments[i] !== segments[i - 1] + 1) {
      throw new CorruptLogError(join(dir, segmentFileName(segments[i - 1] + 1)), 0,
        `segment missing: ${segmentFileName(segments[i - 1])} is followed by ${segmentFileName(segments[i])}`)
    }
  }
  return { segments, newestSnapshot, tempFiles }
}
