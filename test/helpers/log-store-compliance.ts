/**
 * The LogStore contract as one suite, run against every implementation
 * (see log-store.test.ts). Every check goes through the LogStore interface
 * only: what a store holds is observed by closing it and opening a new store
 * over the same storage, as a restarted node would.
 */
import type { Test } from 'tap'
import { InvalidArgumentError, StoppedError } from '../../raft/errors.js'
import type { LogStore, RecoveredState } from '../../raft/storage/log-store.js'
import { EntryType, type Entry, type HardState, type Snapshot } from '../../raft/types.js'

/** An implementation under test. */
export interface LogStoreSubject {
  /**
   * Prepares fresh, empty storage for test `t` and returns a function making
   * stores over it; stores made by the same function share that storage.
   */
  storage(t: Test): () => LogStore
}

/** An entry whose data names its index and term, so a misplaced entry shows. */
export function entry (index: number, term: number, type: EntryType = EntryType.Normal): Entry {
  return { index, term, type, data: new TextEncoder().encode(`entry ${index} of term ${term}`) }
}

/** Entries first..last, all of one term. */
export function entries (first: number, last: number, term: number): Entry[] {
  const out: Entry[] = []
  for (let i = first; i <= last; i++) out.push(entry(i, term))
  return out
}

export function snapshot (index: number, term: number, data = `state at ${index}`): Snapshot {
  return { meta: { index, term, config: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } }, data: new TextEncoder().encode(data) }
}

/** An entry list as `index/term` words, data included: easy to read in a failure. */
export function describe (list: readonly Entry[]): string[] {
  return list.map(e => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`)
}

/** What a recovered state should equal, in the same comparable form. */
export function expectState (hardState: HardState, snap: Snapshot | null, list: readonly Entry[]): unknown {
  return { hardState, snapshot: snap === null ? null : plainSnapshot(snap), entries: describe(list) }
}

export function plainState (s: RecoveredState): unknown {
  return { hardState: s.hardState, snapshot: s.snapshot === null ? null : plainSnapshot(s.snapshot), entries: describe(s.entries) }
}

function plainSnapshot (s: Snapshot): unknown {
  return { meta: s.meta, data: Buffer.from(s.data).toString('hex') }
}

export const hs = (term: number, vote: string | null, commit: number): HardState => ({ term, vote, commit })
const empty = hs(0, null, 0)

/** Runs the whole LogStore contract against `subject`. */
export function runLogStoreCompliance (t: Test, subject: LogStoreSubject): void {
  /** A fresh store over fresh storage, opened, plus a way to restart it. */
  async function start (t: Test): Promise<{ store: LogStore, restart: () => Promise<RecoveredState> }> {
    const make = subject.storage(t)
    const ctx = {
      store: make(),
      async restart (): Promise<RecoveredState> {
        await ctx.store.close()
        ctx.store = make()
        return await ctx.store.open()
      }
    }
    await ctx.store.open()
    t.teardown(async () => { await ctx.store.close().catch(() => {}) })
    return ctx
  }

  t.test('a fresh store opens empty', async t => {
    const { restart } = await start(t)
    t.same(plainState(await restart()), expectState(empty, null, []))
  })

  t.test('entries and hard state survive a restart', async t => {
    const ctx = await start(t)
    const big = { index: 4, term: 2, type: EntryType.Normal, data: new Uint8Array(5000).map((_, i) => i % 251) }
    const log = [entry(1, 1, EntryType.Noop), { ...entry(2, 1), data: new Uint8Array(0) }, entry(3, 1, EntryType.Config), big, entry(5, 2)]
    await ctx.store.save(log.slice(0, 3), hs(1, 'n1', 1))
    await ctx.store.save(log.slice(3), hs(2, 'nœud-2 ✓', 4))
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'nœud-2 ✓', 4), null, log))
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'nœud-2 ✓', 4), null, log), 'a second restart changes nothing')
  })

  t.test('a save may hold only a hard state, only entries, or nothing', async t => {
    const ctx = await start(t)
    await ctx.store.save([], hs(1, null, 0))
    await ctx.store.save(entries(1, 2, 1), null)
    await ctx.store.save([], null)
    await ctx.store.save([], hs(1, 'n2', 2))
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n2', 2), null, entries(1, 2, 1)))
  })

  t.test('a save starting inside the log replaces the suffix from there on', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 40, 1), hs(1, 'n1', 10))
    await ctx.store.save([entry(20, 2), entry(21, 2)], hs(2, 'n2', 10))
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n2', 10), null, [...entries(1, 19, 1), entry(20, 2), entry(21, 2)]))
    await ctx.store.save([entry(21, 3), entry(22, 3)], null)
    await ctx.store.save([entry(23, 3)], null)
    const expected = [...entries(1, 19, 1), entry(20, 2), ...entries(21, 23, 3)]
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n2', 10), null, expected))
    await ctx.store.save([entry(1, 4)], null)
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n2', 10), null, [entry(1, 4)]), 'the whole log can be replaced')
  })

  t.test('invalid saves are rejected and change nothing', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 10, 2), hs(2, 'n1', 3))
    await ctx.store.saveSnapshot(snapshot(4, 2))
    const bad: Array<[string, unknown[], unknown]> = [
      ['a gap after the last index', [entry(12, 2)], null],
      ['entries out of order', [entry(11, 2), entry(13, 2)], null],
      ['a repeated index', [entry(11, 2), entry(11, 2)], null],
      ['an entry at or before the snapshot', [entry(4, 2)], null],
      ['index zero', [entry(0, 2)], null],
      ['a fractional index', [{ ...entry(11, 2), index: 11.5 }], null],
      ['term zero', [entry(11, 0)], null],
      ['a term lower than the entry before', [entry(11, 1)], null],
      ['terms decreasing within the batch', [entry(11, 3), entry(12, 2)], null],
      ['an unknown entry type', [{ ...entry(11, 2), type: 7 }], null],
      ['data that is not bytes', [{ ...entry(11, 2), data: 'text' }], null],
      ['an entry that is not an object', [null], null],
      ['entries that are not an array', 'nope' as unknown as unknown[], null],
      ['a negative hard state term', [], hs(-1, null, 0)],
      ['a non-string vote', [], { term: 2, vote: 7, commit: 0 }],
      ['a fractional commit', [], hs(2, null, 1.5)],
      ['a hard state that is not an object', [], 'hs'],
      ['a vote too long to store', [], hs(2, 'x'.repeat(70000), 0)],
      ['a vote with a lone surrogate, which UTF-8 cannot hold', [], hs(2, 'n\ud800', 0)],
      ['an invalid hard state next to valid entries', [entry(11, 2)], hs(2, null, -3)]
    ]
    for (const [why, list, hardState] of bad) {
      await t.rejects(ctx.store.save(list as Entry[], hardState as HardState), InvalidArgumentError, why)
    }
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n1', 3), snapshot(4, 2), entries(5, 10, 2)))
  })

  t.test('a snapshot matching the log keeps the entries after it', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 30, 1), hs(1, 'n1', 20))
    await ctx.store.saveSnapshot(snapshot(20, 1))
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n1', 20), snapshot(20, 1), entries(21, 30, 1)))
    await t.rejects(ctx.store.save([entry(20, 1)], null), InvalidArgumentError, 'compacted entries cannot be rewritten')
    await ctx.store.save([entry(31, 1)], null)
    await ctx.store.saveSnapshot(snapshot(31, 1, 'later'))
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n1', 20), snapshot(31, 1, 'later'), []), 'a snapshot at the last index keeps nothing')
    await ctx.store.save([entry(32, 1)], null)
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n1', 20), snapshot(31, 1, 'later'), [entry(32, 1)]))
  })

  t.test('a snapshot that conflicts with the log discards all of it', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 30, 1), hs(1, 'n1', 3))
    await ctx.store.saveSnapshot(snapshot(10, 2))
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n1', 3), snapshot(10, 2), []))
    await t.rejects(ctx.store.save([entry(12, 2)], null), InvalidArgumentError, 'the log now ends at the snapshot')
    await t.rejects(ctx.store.save([entry(11, 1)], null), InvalidArgumentError, 'terms after the snapshot cannot go below its term')
    await ctx.store.save([entry(11, 2)], hs(2, 'n3', 11))
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n3', 11), snapshot(10, 2), [entry(11, 2)]))
  })

  t.test('a snapshot beyond the end of the log discards it', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 3, 1), null)
    await ctx.store.saveSnapshot(snapshot(50, 4))
    await ctx.store.save([entry(51, 4)], null)
    t.same(plainState(await ctx.restart()), expectState(empty, snapshot(50, 4), [entry(51, 4)]))
  })

  t.test('invalid or stale snapshots are rejected and change nothing', async t => {
    const ctx = await start(t)
    await ctx.store.save(entries(1, 10, 1), null)
    await ctx.store.saveSnapshot(snapshot(5, 1))
    const bad: Array<[string, unknown]> = [
      ['the same index again', snapshot(5, 1)],
      ['an older index', snapshot(3, 1)],
      ['index zero', snapshot(0, 1)],
      ['term zero', snapshot(7, 0)],
      ['no config', { meta: { index: 7, term: 1 }, data: new Uint8Array(0) }],
      ['voters that are not strings', { meta: { index: 7, term: 1, config: { voters: [1], learners: [] } }, data: new Uint8Array(0) }],
      ['no meta', { data: new Uint8Array(0) }],
      ['data that is not bytes', { ...snapshot(7, 1), data: [1, 2] }],
      ['not an object', 42]
    ]
    for (const [why, snap] of bad) {
      await t.rejects(ctx.store.saveSnapshot(snap as Snapshot), InvalidArgumentError, why)
    }
    t.same(plainState(await ctx.restart()), expectState(empty, snapshot(5, 1), entries(6, 10, 1)))
  })

  t.test('concurrent saves are applied in call order and all made durable', async t => {
    const ctx = await start(t)
    const calls: Array<Promise<void>> = []
    for (let i = 1; i <= 150; i++) calls.push(ctx.store.save([entry(i, 1)], i % 10 === 0 ? hs(1, 'n1', i - 5) : null))
    // A conflicting suffix replaced while earlier calls are still in flight.
    calls.push(ctx.store.save([entry(100, 2), entry(101, 2)], hs(2, 'n2', 99)))
    for (let i = 102; i <= 200; i++) calls.push(ctx.store.save([entry(i, 2)], null))
    await Promise.all(calls)
    t.same(plainState(await ctx.restart()), expectState(hs(2, 'n2', 99), null, [...entries(1, 99, 1), ...entries(100, 200, 2)]))
  })

  t.test('a rejected call among concurrent ones leaves the others alone', async t => {
    const ctx = await start(t)
    const good = [ctx.store.save([entry(1, 1)], null), ctx.store.save([entry(2, 1)], null)]
    const bad = ctx.store.save([entry(4, 1)], null)
    const badSnapshot = ctx.store.saveSnapshot(snapshot(0, 1))
    good.push(ctx.store.save([entry(3, 1)], hs(1, null, 3)))
    await t.rejects(bad, InvalidArgumentError)
    await t.rejects(badSnapshot, InvalidArgumentError)
    await Promise.all(good)
    t.same(plainState(await ctx.restart()), expectState(hs(1, null, 3), null, entries(1, 3, 1)))
  })

  t.test('snapshots interleaved with concurrent saves take effect in call order', async t => {
    const ctx = await start(t)
    const calls: Array<Promise<void>> = []
    for (let i = 1; i <= 40; i++) calls.push(ctx.store.save([entry(i, 1)], null))
    calls.push(ctx.store.saveSnapshot(snapshot(25, 1)))
    for (let i = 41; i <= 60; i++) calls.push(ctx.store.save([entry(i, 1)], hs(1, 'n1', i)))
    calls.push(ctx.store.saveSnapshot(snapshot(70, 3)))
    calls.push(ctx.store.save([entry(71, 3)], null))
    await Promise.all(calls)
    t.same(plainState(await ctx.restart()), expectState(hs(1, 'n1', 60), snapshot(70, 3), [entry(71, 3)]))
  })

  t.test('the hard state survives many restarts, snapshots and rewrites', async t => {
    const ctx = await start(t)
    await ctx.store.save([], hs(7, 'n2', 0))
    for (let round = 0; round < 4; round++) {
      const first = round * 50 + 1
      await ctx.store.save(entries(first, first + 49, 7), null)
      await ctx.store.saveSnapshot(snapshot(first + 40, 7))
      const state = await ctx.restart()
      t.same(state.hardState, hs(7, 'n2', 0), `after round ${round}`)
      t.same(describe(state.entries), describe(entries(first + 41, first + 49, 7)))
    }
  })

  t.test('stored data is a copy of what the caller passed', async t => {
    const ctx = await start(t)
    const e = entry(1, 1)
    const snap = snapshot(1, 1)
    const saved = describe([e])
    const done = ctx.store.save([e], null)
    e.data.fill(0)
    await done
    await ctx.store.save([entry(2, 1)], null)
    t.same(describe((await ctx.restart()).entries).slice(0, 1), saved, 'changing the data after the call does not change the stored entry')
    const snapDone = ctx.store.saveSnapshot(snap)
    snap.data.fill(0)
    await snapDone
    const state = await ctx.restart()
    t.same(plainState(state), expectState(empty, snapshot(1, 1), [entry(2, 1)]))
    state.entries[0].data.fill(0)
    t.same(describe((await ctx.restart()).entries), describe([entry(2, 1)]), 'changing what open() returned does not change the store')
  })

  t.test('calls before open() and a second open() are rejected', async t => {
    const store = subject.storage(t)()
    await t.rejects(store.save([entry(1, 1)], null), InvalidArgumentError)
    await t.rejects(store.saveSnapshot(snapshot(1, 1)), InvalidArgumentError)
    await store.open()
    await t.rejects(store.open(), InvalidArgumentError)
    await store.close()
  })

  t.test('every call after close() rejects with StoppedError', async t => {
    const store = subject.storage(t)()
    await store.open()
    const pending = store.save(entries(1, 3, 1), null)
    await store.close()
    await pending
    await t.rejects(store.save([entry(4, 1)], null), StoppedError)
    await t.rejects(store.saveSnapshot(snapshot(2, 1)), StoppedError)
    await t.rejects(store.open(), StoppedError)
    await t.rejects(store.close(), StoppedError)
  })
}
