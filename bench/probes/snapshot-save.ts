/**
 * A FileLogStore given a large snapshot (MB megabytes, default 30) of its
 * own log, then one more entry: how long that save takes while the
 * snapshot is being written, and how long the snapshot takes to be durable.
 *
 *   node --import tsx bench/probes/snapshot-save.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileLogStore } from '../../raft/storage/wal.js'
import { EntryType, type Entry } from '../../raft/types.js'

const MB = Number(process.env.MB ?? 30)
const entry = (index: number): Entry => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(200) })
for (let round = 0; round < 3; round++) {
  const dir = mkdtempSync(join(tmpdir(), 'raftmesh-snapshot-save-'))
  try {
    const store = new FileLogStore({ dir })
    await store.open()
    await store.save(Array.from({ length: 1000 }, (_, i) => entry(i + 1)), { term: 1, vote: null, commit: 1000 })
    const data = new Uint8Array(MB * 1e6).fill(3)
    const t0 = performance.now()
    const snapshot = store.saveSnapshot({ meta: { index: 900, term: 1, config: { voters: ['a'], learners: [] } }, data })
    const t1 = performance.now()
    await store.save([entry(1001)], null)
    const t2 = performance.now()
    await snapshot
    console.log(`saveSnapshot call ${(t1 - t0).toFixed(0)} ms; a save made after it ${(t2 - t1).toFixed(1)} ms; snapshot durable after ${(performance.now() - t0).toFixed(0)} ms`)
    await store.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
