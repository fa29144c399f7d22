/**
 * MurmurHash3, x86 32-bit variant (Austin Appleby, public domain): a fast
 * non-cryptographic hash for the anti-entropy digest (digest.ts). SHA-1
 * through node:crypto cost 1-3 µs a call, most of it the call itself, and
 * the digest needs two per write on every node; this takes well under a
 * tenth of that for a key and a timestamp, and allocates nothing. The
 * digest only has to tell honest members' versions apart, so a
 * cryptographic hash buys nothing here (members are authenticated).
 */

/** The 32-bit hash of `bytes[0, length)` with `seed`, as an unsigned number. */
export function murmur3 (bytes: Uint8Array, length: number, seed: number): number {
  let h = seed >>> 0
  const blocks = length & ~3
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const tail = length & 3
  if (tail > 0) {
    let k = bytes[blocks]
    if (tail > 1) k |= bytes[blocks + 1] << 8
    if (tail > 2) k |= bytes[blocks + 2] << 16
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
