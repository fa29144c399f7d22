/**
 * The private network's cipher (gossip/xsalsa20-slices.ts): an update far
 * larger than its WebAssembly memory no longer leaves the other ciphers'
 * views stale, which grew the memory on every later update until the
 * process died; and slicing does not change a byte of the output.
 */
import { createRequire } from 'node:module'
import t from 'tap'
import '../gossip/xsalsa20-slices.js'

type Cipher = { update: (input: Uint8Array, output?: Uint8Array) => Uint8Array }
const xsalsa20 = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => Cipher

const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
const nonce = Uint8Array.from({ length: 24 }, (_, i) => 255 - i)

t.test('after a 1 MB update, thousands of small updates on other ciphers still work', async t => {
  const ciphers = Array.from({ length: 8 }, () => xsalsa20(nonce, key))
  ciphers[0].update(new Uint8Array(1_000_000))
  for (let i = 0; i < 5000; i++) ciphers[i % 8].update(new Uint8Array(100))
  t.pass('no RangeError from the cipher\'s memory')
})

t.test('large updates decrypt, in any slicing, to what was encrypted', async t => {
  const sizes = [0, 1, 63, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 700_000, 3_000_001]
  const plain = Uint8Array.from({ length: sizes.reduce((a, b) => a + b) }, (_, i) => (i * 31 + (i >> 9)) & 0xff)
  const enc = xsalsa20(nonce, key)
  const sealed: Uint8Array[] = []
  let at = 0
  for (const n of sizes) {
    sealed.push(enc.update(plain.subarray(at, at + n)))
    at += n
  }
  const all = new Uint8Array(plain.length)
  let off = 0
  for (const s of sealed) { all.set(s, off); off += s.length }
  t.not(Buffer.compare(all, plain), 0, 'encrypted')
  const dec = xsalsa20(nonce, key)
  const opened = new Uint8Array(plain.length)
  // Pieces of 1 to 5,000 bytes: none needs the memory to grow.
  for (let i = 0, k = 0; i < all.length; k++) {
    const n = Math.min(all.length - i, 1 + (k * 7919) % 5000)
    opened.set(dec.update(all.subarray(i, i + n)), i)
    i += n
  }
  t.equal(Buffer.compare(opened, plain), 0, 'decrypted in small pieces, every byte matches')
})
