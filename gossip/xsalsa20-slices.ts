/**
 * The private network's stream cipher (@libp2p/pnet, through the xsalsa20
 * package, 1.2.0) crashed nodes under load. Its WebAssembly memory starts at
 * 640 KiB and grows when one update is larger; every other cipher then holds
 * a view of the old, detached memory, reads its length as 0, and grows the
 * memory again on its next update, detaching the others' views in turn.
 * After one update over ~640 KiB (a large batch sent or read on any
 * connection) each later update on another connection adds a page, and
 * about a thousand messages later the memory reaches its 64 MiB limit and
 * the RangeError thrown from a socket's data handler ends the process
 * (seen in `npm run bench -- cache`, eighth session).
 *
 * This feeds the cipher at most 64 KiB at a time (it is a stream cipher
 * that keeps its position across updates, so the output is the same), so
 * the memory never needs to grow; and should anything else grow it, a
 * cipher whose view went stale is pointed at the live memory first. Loaded
 * once, by the mesh, from where @libp2p/pnet finds the package.
 */
import { createRequire } from 'node:module'

/** The fields of xsalsa20's WebAssembly state that this reads. */
interface WasmState { _memory?: Uint8Array }
interface Cipher { _xor: WasmState | null }
interface CipherClass { prototype: { update: (this: Cipher, input: Uint8Array, output?: Uint8Array) => Uint8Array } }

/** Bytes given to the cipher in one call; far below its initial memory. */
export const SLICE_BYTES = 64 * 1024

const XSalsa20 = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20') as CipherClass
const update = XSalsa20.prototype.update
let live: ArrayBufferLike | null = null

function once (cipher: Cipher, input: Uint8Array, output: Uint8Array): void {
  const w = cipher._xor
  if (w?._memory !== undefined && w._memory.length === 0 && live !== null && live.byteLength > 0) w._memory = new Uint8Array(live)
  update.call(cipher, input, output)
  if (w?._memory !== undefined && w._memory.length > 0) live = w._memory.buffer
}

XSalsa20.prototype.update = function (this: Cipher, input: Uint8Array, output?: Uint8Array): Uint8Array {
  const out = output ?? new Uint8Array(input.length)
  for (let i = 0; i < input.length; i += SLICE_BYTES) once(this, input.subarray(i, i + SLICE_BYTES), out.subarray(i, i + SLICE_BYTES))
  return out
}
