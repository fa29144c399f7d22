/**
 * The anti-entropy summary of a replicated cache: keys fall into
 * DIGEST_BUCKETS buckets, and each bucket's hash is the XOR of a hash of
 * every (key, version) in it, entries and tombstones alike. XOR makes the
 * hash independent of order, so two nodes holding the same versions have
 * the same digest whatever order their writes arrived in; a differing
 * bucket names the keys worth sending.
 */
import { createHash } from 'node:crypto'
import type { Hlc } from './hlc.js'

/**
 * Enough buckets that one bucket's entries fit in one RPC body (1 MiB) for
 * any cache of realistic size (10,000 entries of 64 KiB is 160 KiB a
 * bucket); an exchange sends whole buckets.
 */
export const DIGEST_BUCKETS = 4096
const HASH_BYTES = 8
export const DIGEST_BYTES = DIGEST_BUCKETS * HASH_BYTES

const enc = new TextEncoder()

/** The bucket of a key: from its hash, so buckets fill evenly. */
export function bucketOf (key: Uint8Array): number {
  const h = createHash('sha1').update(key).digest()
  return ((h[0] << 8) | h[1]) % DIGEST_BUCKETS
}

/** Digest of (key, version) pairs. */
export function digestOf (versions: Iterable<{ readonly keyBytes: Uint8Array, readonly hlc: Hlc }>): Uint8Array {
  const digest = new Uint8Array(DIGEST_BYTES)
  for (const { keyBytes, hlc } of versions) {
    const h = createHash('sha1').update(keyBytes).update(enc.encode(`\0${hlc.ms}.${hlc.c}.${hlc.node}`)).digest()
    const off = bucketOf(keyBytes) * HASH_BYTES
    for (let i = 0; i < HASH_BYTES; i++) digest[off + i] ^= h[i]
  }
  return digest
}

/** Buckets whose hashes differ between two digests. */
export function differingBuckets (a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = []
  for (let bucket = 0; bucket < DIGEST_BUCKETS; bucket++) {
    const off = bucket * HASH_BYTES
    for (let i = 0; i < HASH_BYTES; i++) {
      if (a[off + i] !== b[off + i]) {
        out.push(bucket)
        break
      }
    }
  }
  return out
}
