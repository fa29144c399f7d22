/**
 * Reassembles a chunked InstallSnapshot on the follower. Chunks must arrive
 * in order; anything else is answered with the offset we need next, so the
 * leader resends from there (lost or duplicated chunks are harmless).
 */
import type { SnapshotChunk } from './messages.js'
import type { Snapshot } from '../types.js'

interface Incoming {
  readonly index: number
  readonly term: number
  readonly total: number
  readonly chunks: Uint8Array[]
  received: number
}

export type ChunkOutcome = { readonly done: Snapshot } | { readonly next: number }

export class SnapshotReceiver {
  private incoming: Incoming | null = null

  receive (m: SnapshotChunk): ChunkOutcome {
    let inc = this.incoming
    if (inc === null || inc.index !== m.meta.index || inc.term !== m.meta.term || inc.total !== m.total) {
      inc = this.incoming = { index: m.meta.index, term: m.meta.term, total: m.total, chunks: [], received: 0 }
    }
    if (m.offset !== inc.received || m.offset + m.chunk.byteLength > m.total) return { next: inc.received }
    inc.chunks.push(m.chunk)
    inc.received += m.chunk.byteLength
    if (inc.received < inc.total) return { next: inc.received }
    this.incoming = null
    const data = Buffer.concat(inc.chunks)
    return { done: { meta: m.meta, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) } }
  }

  reset (): void {
    this.incoming = null
  }
}
