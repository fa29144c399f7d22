/**
 * The anti-entropy summary of a replicated cache: keys fall into
 * DIGEST_BUCKETS buckets, and each bucket's hash is the XOR of a hash of
 * every (key, version) in it, entries and tombstones alike. XOR makes the
 * hash independent of order, so two nodes holding the same versions have
 * the same digest whatever order their writes arrived in; a differing
 * bucket names the keys worth sending.
 */
import { hash } from 'node:crypto'
import { compareHlc, type Hlc } from './hlc.js'

/**
 * Enough buckets that one bucket's entries fit in one RPC body (1 MiB) for
 * any cache of realistic size (10,000 entries of 64 KiB is 160 KiB a
 * bucket); an exchange sends whole buckets.
 */
export const DIGEST_BUCKETS = 4096
const HASH_BYTES = 8
export const DIGEST_BYTES = DIGEST_BUCKETS * HASH_BYTES

/** Where a version's hash input is assembled: one allocation per size class, not two per version. */
let scratch = Buffer.allocUnsafe(1024)

/** What the digest needs of an entry or a tombstone. */
export interface Version {
  readonly keyBytes: Uint8Array
  readonly hlc: Hlc
}

/** One (key, version)'s place in the digest. */
export interface VersionHash {
  readonly hlc: Hlc
  readonly bucket: number
  readonly hash: Uint8Array
}

/** The bucket of a key: from its hash, so buckets fill evenly. */
export function bucketOf (key: Uint8Array): number {
  const h = hash('sha1', key, 'buffer')
  return ((h[0] << 8) | h[1]) % DIGEST_BUCKETS
}

export function hashVersion (keyBytes: Uint8Array, hlc: Hlc, bucket = bucketOf(keyBytes)): VersionHash {
  const stamp = `\0${hlc.ms}.${hlc.c}.${hlc.node}`
  // Three bytes of UTF-8 at most per UTF-16 unit.
  const room = keyBytes.byteLength + stamp.length * 3
  if (scratch.byteLength < room) scratch = Buffer.allocUnsafe(Math.max(room, scratch.byteLength * 2))
  scratch.set(keyBytes, 0)
  const length = keyBytes.byteLength + scratch.write(stamp, keyBytes.byteLength, 'utf8')
  // One-shot hashing: a third cheaper than a Hash object per version.
  const h = hash('sha1', scratch.subarray(0, length), 'buffer').subarray(0, HASH_BYTES)
  return { hlc, bucket, hash: h }
}

/**
 * A cache's digest, kept as its versions change instead of rebuilt from
 * every entry: an exchange then costs the keys that changed since the last
 * one, not a pass over the whole cache (rebuilding it for each exchange
 * was most of every node's time under a 50,000-set flood). A change is
 * noted and hashed when the digest is next read, so a key written many
 * times between two reads is hashed once. Also knows each bucket's keys, so
 * the entries of the buckets that differ are found without a pass either.
 */
export class VersionIndex {
  private readonly sums = new Uint8Array(DIGEST_BYTES)
  private readonly hashed = new Map<string, VersionHash>()
  private readonly members = new Map<number, Set<string>>()
  /** Keys changed since the last read, with the version each holds now (null: none). */
  private readonly changed = new Map<string, Version | null>()

  /** Key `id` now holds `version` (the entry or tombstone itself, not a copy), or nothing (null). */
  note (id: string, version: Version | null): void {
    this.changed.set(id, version)
  }

  /** The digest of every version held: a copy, the caller may keep it. */
  digest (): Uint8Array {
    this.settle()
    return this.sums.slice()
  }

  /** The keys with a version in `bucket`. */
  keysIn (bucket: number): string[] {
    this.settle()
    return [...(this.members.get(bucket) ?? [])]
  }

  /** Changes noted and not yet hashed. */
  get pending (): number {
    return this.changed.size
  }

  /** Hashes at most `max` of the changes noted so far. */
  settleSome (max: number): void {
    let n = 0
    for (const [id, now] of this.changed) {
      if (n++ >= max) return
      this.changed.delete(id)
      this.take(id, now)
    }
  }

  private settle (): void {
    this.settleSome(Infinity)
  }

  private take (id: string, now: Version | null): void {
    const old = this.hashed.get(id)
    if (old !== undefined && now !== null && compareHlc(old.hlc, now.hlc) === 0) return
    if (old !== undefined) this.xor(old)
    if (now === null) {
      if (old === undefined) return
      this.hashed.delete(id)
      const set = this.members.get(old.bucket)
      set?.delete(id)
      if (set?.size === 0) this.members.delete(old.bucket)
      return
    }
    // A key keeps its bucket: a new version of a known key only replaces its hash.
    const h = hashVersion(now.keyBytes, now.hlc, old?.bucket)
    this.xor(h)
    this.hashed.set(id, h)
    if (old !== undefined) return
    let set = this.members.get(h.bucket)
    if (set === undefined) this.members.set(h.bucket, set = new Set())
    set.add(id)
  }

  private xor (h: VersionHash): void {
    const off = h.bucket * HASH_BYTES
    for (let i = 0; i < HASH_BYTES; i++) this.sums[off + i] ^= h.hash[i]
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
