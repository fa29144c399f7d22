/**
 * The anti-entropy summary of a replicated cache: keys fall into
 * DIGEST_BUCKETS buckets, and each bucket's hash is the XOR of a hash of
 * every (key, version) in it, entries and tombstones alike. XOR makes the
 * hash independent of order, so two nodes holding the same versions have
 * the same digest whatever order their writes arrived in; a differing
 * bucket names the keys worth sending.
 */
import type { Hlc } from './hlc.js'
import { murmur3 } from './murmur3.js'

/**
 * Enough buckets that one bucket's entries fit in one RPC body (1 MiB) for
 * any cache of realistic size (10,000 entries of 64 KiB is 160 KiB a
 * bucket); an exchange sends whole buckets.
 */
export const DIGEST_BUCKETS = 4096
const HASH_BYTES = 8
export const DIGEST_BYTES = DIGEST_BUCKETS * HASH_BYTES
const BUCKET_SEED = 0x9747b28c
const LO_SEED = 0x2545f491
const HI_SEED = 0x6c8e9cf5

/** Where a version's hash input is assembled: one allocation per size class, not one per version. */
let scratch = Buffer.allocUnsafe(1024)

/**
 * One (key, version)'s place in the digest: its bucket and its 64-bit
 * hash as two 32-bit halves, which the digest holds little-endian.
 * Numbers rather than bytes: every stored version keeps one, and a Buffer
 * each (an ArrayBuffer of its own) makes the garbage collector's work grow
 * with the cache.
 */
export interface VersionHash {
  readonly bucket: number
  readonly lo: number
  readonly hi: number
}

/** The bucket of a key: from its hash, so buckets fill evenly. */
export function bucketOf (key: Uint8Array): number {
  return murmur3(key, key.byteLength, BUCKET_SEED) % DIGEST_BUCKETS
}

/**
 * The hash of a key at a version: of the key's length (4 bytes), the key,
 * the milliseconds and the counter (float64 each) and the node id (UTF-8),
 * all big-endian; written as bytes rather than formatted as text,
 * which cost more than the hashing. A known key passes its bucket, which
 * never changes.
 */
export function hashVersion (keyBytes: Uint8Array, hlc: Hlc, bucket = bucketOf(keyBytes)): VersionHash {
  const key = keyBytes.byteLength
  // Three bytes of UTF-8 at most per UTF-16 unit.
  const room = key + 20 + hlc.node.length * 3
  if (scratch.byteLength < room) scratch = Buffer.allocUnsafe(Math.max(room, scratch.byteLength * 2))
  scratch.writeUInt32BE(key, 0)
  scratch.set(keyBytes, 4)
  scratch.writeDoubleBE(hlc.ms, key + 4)
  scratch.writeDoubleBE(hlc.c, key + 12)
  const length = key + 20 + scratch.write(hlc.node, key + 20, 'utf8')
  return { bucket, lo: murmur3(scratch, length, LO_SEED), hi: murmur3(scratch, length, HI_SEED) }
}

/**
 * A cache's digest, kept up to date as versions change: each change XORs
 * the old version's hash out and the new one's in, so reading the digest
 * costs a copy, not a pass over the cache. Each version carries its own
 * hash, computed once when it is stored, so no map of pending changes or
 * of hashes is kept. (Before, changes were noted in a map and hashed with
 * SHA-1 when the digest was next read: 7-10 µs per changed key, spread
 * over event-loop turns to keep a backlog from stalling the node.)
 *
 * Also knows each bucket's keys, so the entries of the buckets that differ
 * are found without a pass over the cache. A bucket's list only grows as
 * keys arrive; a key that left stays listed until the list is read or is
 * over twice the keys the bucket holds, when it is rebuilt from the keys
 * still held. A Set per bucket cost about 2 µs per new key (its growth
 * and hashing), as much as the rest of a write.
 */
export class VersionIndex {
  private readonly sums = new Uint8Array(DIGEST_BYTES)
  private readonly view = new DataView(this.sums.buffer)
  private readonly lists: Array<string[] | undefined> = new Array(DIGEST_BUCKETS)
  /** Keys holding a version, per bucket. */
  private readonly counts = new Uint32Array(DIGEST_BUCKETS)

  /** `holds(id)`: whether key `id` holds a version now (an entry or a tombstone). */
  constructor (private readonly holds: (id: string) => boolean) {}

  /**
   * Key `id` held the version hashed `was` (null: none) and now holds the
   * one hashed `now` (null: none). The two are of the same key, so in the
   * same bucket. Call it once the change is made (holds(id) answers for
   * after it).
   */
  swap (id: string, was: VersionHash | null, now: VersionHash | null): void {
    if (was !== null) this.xor(was)
    if (now !== null) this.xor(now)
    if (was === null && now !== null) {
      const b = now.bucket
      this.counts[b]++
      const list = this.lists[b]
      if (list === undefined) this.lists[b] = [id]
      else list.push(id)
      this.trim(b)
    } else if (was !== null && now === null) {
      this.counts[was.bucket]--
      this.trim(was.bucket)
    }
  }

  /** The digest of every version held: a copy, the caller may keep it. */
  digest (): Uint8Array {
    return this.sums.slice()
  }

  /** Ids listed over all buckets, including keys that left and are not yet dropped from their lists: what the lists cost. */
  get listed (): number {
    let n = 0
    for (const list of this.lists) n += list?.length ?? 0
    return n
  }

  /** The keys with a version in `bucket`. */
  keysIn (bucket: number): string[] {
    return [...this.rebuild(bucket)]
  }

  /** Rebuilds the bucket's list once it is over twice the keys held (plus two, so that a bucket of one or two keys is not rebuilt at every change). */
  private trim (bucket: number): void {
    if ((this.lists[bucket]?.length ?? 0) > 2 * this.counts[bucket] + 2) this.rebuild(bucket)
  }

  /** The bucket's list, without keys that left or are listed twice. */
  private rebuild (bucket: number): string[] {
    const list = [...new Set(this.lists[bucket] ?? [])].filter(this.holds)
    this.lists[bucket] = list.length > 0 ? list : undefined
    return list
  }

  private xor (h: VersionHash): void {
    const off = h.bucket * HASH_BYTES
    this.view.setUint32(off, this.view.getUint32(off, true) ^ h.lo, true)
    this.view.setUint32(off + 4, this.view.getUint32(off + 4, true) ^ h.hi, true)
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
