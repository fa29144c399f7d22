/**
 * How a coordination snapshot grows with a queue's backlog: its bytes, and
 * the time to encode and to restore it, at 10,000, 100,000 and 300,000
 * queued items of 100 bytes.
 *
 *   node --import tsx bench/probes/snapshot-size.ts
 */
import { CoordinationState } from '../../lib/coordination/state.js'

for (const n of [10_000, 100_000, 300_000]) {
  const s = new CoordinationState()
  const payload = new Uint8Array(100).fill(7)
  for (let i = 0; i < n; i++) s.queues.enqueue('q', { id: null, payload, delayMs: 0, maxAttempts: 5 }, { session: 's', index: i + 1, stamp: 1_700_000_000_000 + i })
  let t = performance.now()
  const snap = s.snapshot()
  const encodeMs = performance.now() - t
  t = performance.now()
  new CoordinationState().restore(snap)
  console.log(`${n} items: snapshot ${(snap.byteLength / 1e6).toFixed(1)} MB, encode ${encodeMs.toFixed(0)} ms, restore ${(performance.now() - t).toFixed(0)} ms`)
}
