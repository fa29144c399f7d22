import t from 'tap'
import { MemoryDisk, MemoryLogStore } from '../raft/log-store.js'
import { FileLogStore } from '../raft/wal.js'
import { runLogStoreCompliance } from './helpers/log-store-compliance.js'

t.test('MemoryLogStore', async t => {
  runLogStoreCompliance(t, {
    storage: () => {
      const disk = new MemoryDisk()
      return () => new MemoryLogStore(disk)
    }
  })
})

t.test('FileLogStore', async t => {
  runLogStoreCompliance(t, {
    storage: t => {
      const dir = t.testdir()
      // Small segments, so suffix truncation, snapshots and the hard state all cross segment boundaries.
      return () => new FileLogStore({ dir, segmentBytes: 300 })
    }
  })
})

t.test('FileLogStore with inline fsync', async t => {
  runLogStoreCompliance(t, {
    storage: t => {
      const dir = t.testdir()
      return () => new FileLogStore({ dir, segmentBytes: 300, fsync: 'inline' })
    }
  })
})
