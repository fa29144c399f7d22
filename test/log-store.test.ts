import t from 'tap'
import { MemoryDisk, MemoryLogStore } from '../raft/storage/log-store.js'
import { EntryType } from '../raft/types.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { nodeFileSystem, type FileSystem } from '../raft/storage/file-system.js'
import { entries, entry, expectState, hs, plainState, runLogStoreCompliance, snapshot } from './helpers/log-store-compliance.js'

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

t.test('saves issued by separate callbacks of one event-loop turn share a flush, with either fsync mode', async t => {
  for (const fsync of ['threadpool', 'inline'] as const) {
    const store = new FileLogStore({ dir: t.testdir(), fsync })
    await store.open()
    const before = store.syncs
    const saves = await new Promise<Array<Promise<void>>>(resolve => {
      const pending: Array<Promise<void>> = []
      // Like requests read from several sockets in one poll phase: each save is made by its own callback.
      for (let i = 1; i <= 20; i++) setImmediate(() => { pending.push(store.save([{ index: i, term: 1, type: EntryType.Normal, data: new Uint8Array([i]) }], null)) })
      setImmediate(() => { resolve(pending) })
    })
    await Promise.all(saves)
    t.ok(store.syncs - before < 20, `${fsync}: 20 saves took ${store.syncs - before} flushes`)
    await store.close()
  }
})

t.test('a snapshot that keeps the log is written beside it: saves made meanwhile do not wait for the file', async t => {
  const dir = t.testdir()
  let release: () => void = () => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  // The snapshot file's rename into place waits until the test lets it go.
  const fs: FileSystem = { ...nodeFileSystem, rename: async (from, to) => { if (to.endsWith('.bin')) await gate; await nodeFileSystem.rename(from, to) } }
  const store = new FileLogStore({ dir, fs })
  await store.open()
  await store.save(entries(1, 10, 1), hs(1, null, 10))
  let snapped = false
  const snap = store.saveSnapshot(snapshot(8, 1)).then(() => { snapped = true })
  await store.save([entry(11, 1)], null)
  await store.save([entry(12, 1)], hs(1, null, 12))
  t.notOk(snapped, 'the saves made after the snapshot are durable while its file is still being written')
  release()
  await snap
  await store.close()
  const reopened = new FileLogStore({ dir })
  const state = await reopened.open()
  t.same(plainState(state), expectState(hs(1, null, 12), snapshot(8, 1), entries(9, 12, 1)))
  await reopened.close()
})
