/**
 * The cost of a replicated cache's anti-entropy digest in one process:
 * 50,000 keys written twice each (a new key, then a new version of it),
 * then the digest read, over six rounds (the first ones warm up); and,
 * with a TTL, the digest of an unchanged cache of 10,000, 100,000 and
 * 1,000,000 entries (which must first drop what expired). It uses only
 * `set()` and `digest()`, so it runs unchanged on older trees too (before
 * f693e9f the digest read did the hashing).
 *
 *   node --import tsx bench/probes/cache-digest.ts
 */
import { LwwState } from '../../lib/cache/lww-state.js'

const enc = new TextEncoder()
const N = 50_000
for (let round = 0; round < 6; round++) {
  const s = new LwwState<number>({ maxEntries: 100_000, tombstoneTtlMs: 60_000, clock: () => 0 })
  const keys = Array.from({ length: N }, (_, i) => [`k${round}:${i}`, enc.encode(`k${round}:${i}`)] as const)
  const t0 = performance.now()
  for (const [i, [id, bytes]] of keys.entries()) s.set(id, id, bytes, i, { ms: 1, c: i, node: 'n1' })
  const t1 = performance.now()
  for (const [i, [id, bytes]] of keys.entries()) s.set(id, id, bytes, i, { ms: 2, c: i, node: 'n1' })
  const t2 = performance.now()
  s.digest()
  const t3 = performance.now()
  const us = (ms: number): string => (ms * 1000 / N).toFixed(2)
  console.log(`round ${round}: a new key ${us(t1 - t0)} µs, a new version ${us(t2 - t1)} µs, then the digest read in ${(t3 - t2).toFixed(1)} ms: ${(t3 - t0).toFixed(0)} ms in all`)
}
for (const n of [10_000, 100_000, 1_000_000]) {
  const now = 1000
  const s = new LwwState<number>({ maxEntries: n, ttlMs: 600_000, tombstoneTtlMs: 60_000, clock: () => now })
  for (let i = 0; i < n; i++) s.set(`k${i}`, `k${i}`, enc.encode(`k${i}`), i, { ms: now, c: i, node: 'a' })
  s.digest()
  const t = performance.now()
  s.digest()
  console.log(`${n} entries with a TTL, nothing changed: digest in ${(performance.now() - t).toFixed(1)} ms`)
}
