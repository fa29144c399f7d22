/**
 * The anti-entropy summary of a replicated cache: keys fall into
 * DIGEST_BUCKETS buckets, and each bucket's hash is the XOR of a hash of
 * every (key, version) in it, entries and tombstones alike. XOR makes the
 * hash independent of order, so two nodes holding the same versions have
 * the same digest whatever order their writes arrived in; a differing
 * bucket names the keys worth sending.
 */
import { createHash } from 'node:crypto'
import { compareHlc, type Hlc } from './hlc.js'

/**
 * Enough buckets that one bucket's entries fit in one RPC body (1 MiB) for
 * any cache of realistic size (10,000 entries of 64 KiB is 160 KiB a
 * bucket); an exchange sends whole buckets.
 */
export const DIGEST_BUCKETS = 4096
const HASH_BYTES = 8
export const DIGEST_BYTES = DIGEST_BUCKETS * HASH_BYTES

const enc = new TextEncoder()

/** One (key, version)'s place in the digest. */
export interface VersionHash {
  readonly hlc: Hlc
  readonly bucket: number
  readonly hash: Uint8Array
}

/** The bucket of a key: from its hash, so buckets fill evenly. */
export function bucketOf (key: Uint8Array): number {
  const h = createHash('sha1').update(key).digest()
  return ((h[0] << 8) | h[1]) % DIGEST_BUCKETS
}

export function hashVersion (keyBytes: Uint8Array, hlc: Hlc, bucket = bucketOf(keyBytes)): VersionHash {
  const hash = createHash('sha1').update(keyBytes).update(enc.encode(`\0${hlc.ms}.${hlc.c}.${hlc.node}`)).digest().subarray(0, HASH_BYTES)
  return { hlc, bucket, hash }
}

/**
 * Builds digests, remembering each key's hash between builds: an exchange
 * builds one per round, and rehashing every entry each time made catching
 * up on 50,000 entries take a minute.
 */
export class DigestCache {
  private hashes = new Map<string, VersionHash>()

  /** The digest of (id, key, version) triples; forgets the ids not among them. */
  build (versions: Iterable<{ readonly id: string, readonly keyBytes: Uint8Array, readonly hlc: Hlc }>): Uint8Array {
    const digest = new Uint8Array(DIGEST_BYTES)
    const next = new Map<string, VersionHash>()
    for (const { id, keyBytes, hlc } of versions) {
      const known = this.hashes.get(id)
      const h = known !== undefined && compareHlc(known.hlc, hlc) === 0 ? known : hashVersion(keyBytes, hlc, known?.bucket)
      next.set(id, h)
      const off = h.bucket * HASH_BYTES
      for (let i = 0; i < HASH_BYTES; i++) digest[off + i] ^= h.hash[i]
    }
    this.hashes = next
    return digest
  }

  /** The bucket of a key built into the last digest, or computed. */
  bucket (id: string, keyBytes: Uint8Array): number {
    return this.hashes.get(id)?.bucket ?? bucketOf(keyBytes)
  }
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
