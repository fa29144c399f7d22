/**
 * The cost of a replicated cache's anti-entropy digest in one process:
 * 50,000 writes of new keys, each hashed into the digest as it is stored,
 * then the digest read; and, with a TTL, the digest of an unchanged cache
 * of 10,000, 100,000 and 1,000,000 entries (which must first drop what
 * expired).
 *
 *   node --import tsx bench/probes/cache-digest.ts
 */
import { LwwState } from '../../lib/cache/lww-state.js'

const enc = new TextEncoder()
for (let round = 0; round < 3; round++) {
  const s = new LwwState<number>({ maxEntries: 100_000, tombstoneTtlMs: 60_000, clock: () => 0 })
  const keys = Array.from({ length: 50_000 }, (_, i) => [`k${round}:${i}`, enc.encode(`k${round}:${i}`)] as const)
  const t0 = performance.now()
  for (const [i, [id, bytes]] of keys.entries()) s.set(id, id, bytes, i, { ms: 1, c: i, node: 'n1' })
  const t1 = performance.now()
  s.digest()
  console.log(`50,000 new keys stored in ${(t1 - t0).toFixed(0)} ms, then the digest read in ${(performance.now() - t1).toFixed(1)} ms`)
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
