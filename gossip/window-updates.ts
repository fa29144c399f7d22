/**
 * Fewer yamux window updates on the Raft stream.
 *
 * @libp2p/yamux answers every data frame it receives with a WINDOW_UPDATE
 * frame once the stream is established: any consumption at all triggers one.
 * On the Raft stream that doubles the frames on the wire, each encrypted by
 * noise and the private-network cipher and written with its own syscall
 * (seen by tracing socket writes). Go's yamux sends an update only once half
 * the window is used; this does the same for a stream whose reader never
 * pauses, so the sender always has at least half a window and never stalls.
 * Any other muxer, or a yamux whose stream lacks these fields, is left alone.
 */
import type { Stream } from '@libp2p/interface'

interface YamuxWindow {
  state: number
  recvWindow: number
  recvWindowCapacity: number
  sendWindowUpdate: () => void
}

/** yamux's StreamState.Established: handshake flags (SYN/ACK) are done. */
const ESTABLISHED = 3

/** Returns true when the stream was a yamux stream and now batches its window updates. */
export function batchWindowUpdates (stream: Stream): boolean {
  const s = stream as unknown as Partial<YamuxWindow>
  const send = s.sendWindowUpdate
  if (typeof send !== 'function' || typeof s.recvWindow !== 'number' || typeof s.recvWindowCapacity !== 'number' || typeof s.state !== 'number') return false
  s.sendWindowUpdate = function (this: YamuxWindow): void {
    if (this.state === ESTABLISHED && this.recvWindowCapacity > this.recvWindow / 2) return
    send.call(this)
  }
  return true
}
