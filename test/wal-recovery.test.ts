import t, { type Test } from 'tap'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { MemoryDisk, MemoryLogStore, type LogStore } from '../raft/storage/log-store.js'
import type { HardState } from '../raft/types.js'
import { decodeWal, encodeRecord, type DecodedRecord } from '../raft/storage/wal-codec.js'
import { FileLogStore } from '../raft/storage/wal.js'
import type { Logger } from '../raft/logger.js'
import { encodeSnapshotFile, snapshotFileName, writeSnapshotFile } from '../raft/storage/snapshot-file.js'
import { nodeFileSystem } from '../raft/storage/file-system.js'
import { entries, entry, expectState, plainState, snapshot } from './helpers/log-store-compliance.js'

const hs = (term: number, vote: string | null, commit: number): HardState => ({ term, vote, commit })

/** A store over `dir` with small segments, and the warnings it logs. */
function fileStore (dir: string, segmentBytes = 300): { store: FileLogStore, warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = []
  const logger: Pick<Logger, 'warn'> = { warn: (obj, msg) => warnings.push({ ...obj, msg }) }
  return { store: new FileLogStore({ dir, segmentBytes, logger }), warnings }
}

/** Writes with one store, closes it: the files a stopped node leaves. */
async function prepare (dir: string, work: (s: FileLogStore) => Promise<void>, segmentBytes = 300): Promise<void> {
  const { store } = fileStore(dir, segmentBytes)
  await store.open()
  await work(store)
  await store.close()
}

async function segments (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(n => n.startsWith('wal-')).sort().map(n => join(dir, n))
}

async function records (path: string): Promise<DecodedRecord[]> {
  return decodeWal(await readFile(path)).records
}

/** Opens a new store over `dir`, expecting a CorruptLogError, and checks recovery changed no file. */
async function expectCorrupt (t: Test, dir: string, expected: { file?: string, offset?: number, message?: RegExp }): Promise<void> {
  const before = await snapshotDir(dir)
  const { store } = fileStore(dir)
  await t.rejects(store.open(), { name: 'CorruptLogError', ...expected })
  t.same(await snapshotDir(dir), before, 'a refused recovery leaves every file as it found it')
}

async function snapshotDir (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(dir)).sort()) out[name] = (await readFile(join(dir, name))).toString('hex')
  return out
}

t.test('a torn write at the end of the newest segment is cut off, and the node keeps appending', async t => {
  for (const [why, tail] of [
    ['half a record', encodeRecord({ kind: 'entry', entry: entry(21, 1) }).subarray(0, 20)],
    ['a record whose data never landed', Buffer.concat([encodeRecord({ kind: 'entry', entry: entry(21, 1) }).subarray(0, 8), Buffer.alloc(40)])],
    ['zeroes from a file that grew before its data was written', Buffer.alloc(4096)]
  ] as const) {
    const dir = t.testdir()
    await prepare(dir, async s => { await s.save(entries(1, 20, 1), hs(1, 'n1', 20)) })
    const last = (await segments(dir)).at(-1)!
    const { size } = await stat(last)
    await appendFile(last, tail)
    const { store, warnings } = fileStore(dir)
    t.same(plainState(await store.open()), expectState(hs(1, 'n1', 20), null, entries(1, 20, 1)), why)
    t.match(warnings, [{ file: last, offset: size, msg: /torn/ }], 'the truncation is logged with file and offset')
    t.equal((await stat(last)).size, size, 'the file is cut back to its last whole record')
    await store.save(entries(21, 25, 1), hs(1, 'n1', 25))
    await store.close()
    const { store: again } = fileStore(dir)
    t.same(plainState(await again.open()), expectState(hs(1, 'n1', 25), null, entries(1, 25, 1)), 'appends after the cut survive')
    await again.close()
  }
})

t.test('a damaged record before the tail is a CorruptLogError naming the file and offset', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { await s.save(entries(1, 20, 1), hs(1, 'n1', 5)) }, 1 << 20)
  const [segment] = await segments(dir)
  const victim = (await records(segment))[6]
  const bytes = await readFile(segment)
  bytes[victim.offset + victim.size - 3] ^= 0x10
  await writeFile(segment, bytes)
  await expectCorrupt(t, dir, { file: segment, offset: victim.offset, message: /checksum mismatch, and a valid record follows/ })
})

t.test('a record with a valid checksum the reader does not understand is corruption, not a tear', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { await s.save(entries(1, 3, 1), null) }, 1 << 20)
  const [segment] = await segments(dir)
  const { size } = await stat(segment)
  const body = Buffer.from([42, 0, 0])
  const frame = Buffer.alloc(8)
  frame.writeUInt32LE(body.length, 0)
  frame.writeUInt32LE((await import('node:zlib')).crc32(body), 4)
  await appendFile(segment, Buffer.concat([frame, body]))
  await expectCorrupt(t, dir, { file: segment, offset: size, message: /unknown record kind 42/ })
})

t.test('a sealed segment may not be torn, nor lose records at its end', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => {
    for (let i = 1; i <= 30; i++) await s.save([entry(i, 1)], null)
  })
  const [first] = await segments(dir)
  const frames = await records(first)
  const lastFrame = frames.at(-1)!
  await truncate(first, lastFrame.offset + 5)
  await expectCorrupt(t, dir, { file: first, offset: lastFrame.offset, message: /only the newest segment may end in a torn write/ })
  await truncate(first, lastFrame.offset)
  await expectCorrupt(t, dir, { file: first, offset: lastFrame.offset, message: /the end of this segment is missing/ })
  await truncate(first, 0)
  await expectCorrupt(t, dir, { file: first, offset: 0, message: /no records/ })
})

t.test('a missing middle segment is a CorruptLogError naming it', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { await s.save(entries(1, 40, 1), hs(1, null, 0)) })
  const files = await segments(dir)
  t.ok(files.length >= 4, `the log spans ${files.length} segments`)
  await unlink(files[1])
  await expectCorrupt(t, dir, { file: files[1], offset: 0, message: /segment missing/ })
})

t.test('a missing first segment leaves a gap before the log that recovery refuses', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => {
    await s.save(entries(1, 40, 1), null)
    await s.saveSnapshot(snapshot(3, 1))
  })
  const files = await segments(dir)
  await unlink(files[0])
  await expectCorrupt(t, dir, { file: files[1], message: /resumes at index \d+ but the snapshot ends at 3/ })
})

t.test('a segment renamed out of its place is refused', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { await s.save(entries(1, 10, 1), null) })
  const files = await segments(dir)
  await writeFile(files[0], await readFile(files[1]))
  await expectCorrupt(t, dir, { file: files[0], offset: 0, message: /says it is segment/ })
})

t.test('a snapshot deletes the segments it covers, and older snapshot files', async t => {
  const dir = t.testdir()
  const { store } = fileStore(dir)
  await store.open()
  await store.save(entries(1, 100, 1), hs(1, 'n1', 100))
  const before = await segments(dir)
  await store.saveSnapshot(snapshot(60, 1))
  const after = await segments(dir)
  t.ok(after.length < before.length, `${before.length} segments before, ${after.length} after`)
  t.same(after, before.slice(before.length - after.length), 'the oldest ones went')
  for (const file of after.slice(0, -1)) {
    const highest = Math.max(...(await records(file)).map(r => r.record.kind === 'entry' ? r.record.entry.index : 0))
    t.ok(highest > 60, `${basename(file)} is kept because it holds entry ${highest}`)
  }
  await store.saveSnapshot(snapshot(90, 1))
  t.same((await readdir(dir)).filter(n => n.startsWith('snap-')), [snapshotFileName(90)], 'only the newest snapshot file is kept')
  await store.close()
  const { store: again } = fileStore(dir)
  t.same(plainState(await again.open()), expectState(hs(1, 'n1', 100), snapshot(90, 1), entries(91, 100, 1)))
  await again.close()
})

t.test('a snapshot that discards the log deletes every older segment', async t => {
  const dir = t.testdir()
  const { store } = fileStore(dir)
  await store.open()
  await store.save(entries(1, 50, 1), hs(2, 'n2', 10))
  await store.saveSnapshot(snapshot(80, 2))
  t.equal((await segments(dir)).length, 1, 'only the active segment is left')
  await store.save([entry(81, 2)], null)
  await store.close()
  const { store: again } = fileStore(dir)
  t.same(plainState(await again.open()), expectState(hs(2, 'n2', 10), snapshot(80, 2), [entry(81, 2)]))
  await again.close()
})

t.test('the hard state survives segment rolls and compaction', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => {
    await s.save([], hs(9, 'n3', 0))
    for (let i = 1; i <= 120; i += 4) await s.save(entries(i, i + 3, 9), null)
    await s.saveSnapshot(snapshot(118, 9))
  }, 200)
  const files = await segments(dir)
  t.ok(Number(files[0].slice(-20, -4)) > 5, `early segments are gone (the oldest left is ${basename(files[0])})`)
  const { store } = fileStore(dir, 200)
  t.same(plainState(await store.open()), expectState(hs(9, 'n3', 0), snapshot(118, 9), entries(119, 120, 9)))
  await store.close()
})

t.test('a damaged or truncated snapshot file is a CorruptLogError, not a fallback', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => {
    await s.save(entries(1, 10, 1), null)
    await s.saveSnapshot(snapshot(8, 1))
  })
  const file = join(dir, snapshotFileName(8))
  const good = await readFile(file)
  const flipped = Buffer.from(good)
  flipped[flipped.length - 2] ^= 1
  await writeFile(file, flipped)
  await expectCorrupt(t, dir, { file, offset: 20, message: /checksum/ })
  await writeFile(file, good.subarray(0, good.length - 1))
  await expectCorrupt(t, dir, { file, offset: 12, message: /body bytes/ })
  await writeFile(file, good.subarray(0, 10))
  await expectCorrupt(t, dir, { file, offset: 0, message: /not a snapshot file/ })
  await writeFile(file, encodeSnapshotFile(snapshot(7, 1)))
  await expectCorrupt(t, dir, { file, message: /file name says index 8/ })
})

t.test('a snapshot marker without its snapshot file is refused', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => {
    await s.save(entries(1, 10, 1), null)
    await s.saveSnapshot(snapshot(8, 1))
  })
  await unlink(join(dir, snapshotFileName(8)))
  await expectCorrupt(t, dir, { message: /snapshot marker for index 8 but no snapshot file/ })
})

t.test('snapshot files with no WAL at all are refused: the hard state would be lost', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { await s.saveSnapshot(snapshot(8, 1)) })
  for (const file of await segments(dir)) await unlink(file)
  await expectCorrupt(t, dir, { file: dir, offset: 0, message: /no WAL segment/ })
})

t.test('a crash between the snapshot file and its WAL marker is finished on restart', async t => {
  for (const [why, snap, expected, next] of [
    ['the snapshot matches the log: entries after it are kept', snapshot(10, 1), entries(11, 20, 1), entry(21, 1)],
    ['the snapshot conflicts: the log is discarded', snapshot(10, 5), [], entry(11, 5)]
  ] as const) {
    const dir = t.testdir()
    await prepare(dir, async s => { await s.save(entries(1, 20, 1), hs(1, 'n1', 4)) })
    // What saveSnapshot leaves if the process dies right after the rename, plus a leftover temporary file.
    await writeSnapshotFile(nodeFileSystem, dir, 10, encodeSnapshotFile(snap))
    await writeFile(join(dir, `${snapshotFileName(12)}.tmp`), 'half written')
    const { store } = fileStore(dir)
    t.same(plainState(await store.open()), expectState(hs(1, 'n1', 4), snap, [...expected]), why)
    t.notOk((await readdir(dir)).some(n => n.endsWith('.tmp')), 'the temporary file is removed')
    await store.save([next], null)
    await store.close()
    const { store: again } = fileStore(dir)
    t.same(plainState(await again.open()), expectState(hs(1, 'n1', 4), snap, [...expected, next]), 'entries saved after recovery stay')
    await again.close()
  }
})

t.test('a lost snapshot marker is refused once compaction has removed what deciding would need', async t => {
  const dir = t.testdir()
  await prepare(dir, async s => { for (let i = 1; i <= 30; i++) await s.save([entry(i, 1)], null) })
  // Snapshot at the last entry of the second segment, so both first segments are deleted.
  const files = await segments(dir)
  const covered = Math.max(...(await records(files[1])).map(r => r.record.kind === 'entry' ? r.record.entry.index : 0))
  await prepare(dir, async s => { await s.saveSnapshot(snapshot(covered, 1)) })
  const active = (await segments(dir)).at(-1)!
  const marker = (await records(active)).filter(r => r.record.kind === 'snapshot' && r.record.index === covered).at(-1)!
  // Bytes that were fsynced go missing: not a crash, so recovery must not treat it as one.
  await truncate(active, marker.offset)
  await expectCorrupt(t, dir, { message: new RegExp(`snapshot at ${covered} has no WAL marker, and the log starts after it`) })
})

t.test('an I/O error fails the store: that call and all later ones reject', async t => {
  const dir = join(await mkdtemp(join(tmpdir(), 'raftmesh-wal-fail-')), 'data')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { store } = fileStore(dir, 100)
  await store.open()
  await store.save(entries(1, 3, 1), null)
  // With the directory gone, the next segment cannot be created.
  await rm(dir, { recursive: true })
  await t.rejects(store.save(entries(4, 10, 1), null), { code: 'ENOENT' })
  await t.rejects(store.save([entry(11, 1)], null), { name: 'StorageFailedError', message: /failed and accepts no more writes/ })
  await store.close()
})

t.test('FileLogStore refuses bad options', async t => {
  t.throws(() => new FileLogStore({ dir: '' }), { name: 'InvalidArgumentError' })
  t.throws(() => new FileLogStore({ dir: '/tmp/x', segmentBytes: 0 }), { name: 'InvalidArgumentError' })
  t.throws(() => new FileLogStore({ dir: '/tmp/x', fsync: 'sometimes' as 'inline' }), { name: 'InvalidArgumentError' })
})

// ---- Differential: random histories with restarts, the file store against the memory store. ----

type Op =
  | { kind: 'save', back: number, count: number, newTerm: boolean, commit: number | null }
  | { kind: 'snapshot', back: number, conflict: boolean }
  | { kind: 'restart' }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('save' as const), back: fc.nat(4), count: fc.nat(4), newTerm: fc.boolean(), commit: fc.option(fc.nat(30), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), back: fc.nat(6), conflict: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) }
)

t.test('random histories with restarts recover the same state from files as from memory', async t => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), async ops => {
    const dir = await mkdtemp(join(tmpdir(), 'raftmesh-wal-diff-'))
    const disk = new MemoryDisk()
    const fresh = (): { memory: LogStore, file: LogStore } => ({ memory: new MemoryLogStore(disk), file: new FileLogStore({ dir, segmentBytes: 256 }) })
    let stores = fresh()
    try {
      await stores.memory.open()
      await stores.file.open()
      // The history's own view of the log: termAt[i] is the term of entry i.
      const termAt: number[] = [0]
      let snapIndex = 0
      let term = 1
      const pending: Array<Promise<void>> = []
      const compare = async (): Promise<void> => {
        await Promise.all(pending.splice(0))
        await stores.memory.close()
        await stores.file.close()
        stores = fresh()
        const [m, f] = [await stores.memory.open(), await stores.file.open()]
        assert.deepEqual(plainState(f), plainState(m))
        assert.equal(f.entries.length, termAt.length - 1 - snapIndex)
      }
      for (const op of ops) {
        const last = termAt.length - 1
        if (op.kind === 'restart') {
          await compare()
        } else if (op.kind === 'save') {
          const first = Math.max(snapIndex + 1, last + 1 - op.back)
          if (op.newTerm || (op.count > 0 && first <= last)) term++
          const list = op.count === 0 ? [] : entries(first, first + op.count - 1, term)
          if (list.length > 0) termAt.length = first
          for (const e of list) termAt.push(e.term)
          const hardState = op.commit === null ? null : hs(term, 'n1', op.commit)
          pending.push(stores.memory.save(list, hardState), stores.file.save(list, hardState))
        } else {
          const index = Math.max(snapIndex + 1, last - op.back)
          const keeps = !op.conflict && index <= last
          if (!keeps) {
            // A leader's snapshot from a later term: the log is discarded and now ends at it.
            term++
            termAt.length = index + 1
            termAt[index] = term
          }
          const snap = snapshot(index, termAt[index])
          snapIndex = index
          pending.push(stores.memory.saveSnapshot(snap), stores.file.saveSnapshot(snap))
        }
      }
      await compare()
    } finally {
      await stores.file.close().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }), { numRuns: 150 })
  t.pass('150 random histories agreed')
})
