/**
 * @libp2p/yamux 8 answers every data frame it receives with a window
 * update, however little of the window the frame used: each message on any
 * stream (a Raft Append, a gossip batch, a keep-alive) costs the receiver a
 * socket write and wakes the sender once more to read it. The yamux spec
 * (and go-yamux) sends an update only once at least half the window is
 * used; so does this, by wrapping the stream's `sendWindowUpdate` once,
 * when the mesh module loads. Frames that must carry a flag (the SYN/ACK
 * of a new stream) and a paused stream go through unchanged, and the
 * sender never waits for an update it needs: its window runs out only once
 * the receiver's has fallen under half, when the update is sent. Should a
 * later yamux rename the fields read here, the comparison is false and
 * every update goes out as before.
 *
 * With 5 processes and 1,000 cache sets a second, the writer's CPU went
 * from 376–377 to 257–300 ms/s (bench/RESULTS.md, seventh session).
 * test/yamux-window.test.ts checks both halves: small messages send no
 * update, and a transfer of many windows still completes.
 */
import { StreamState, YamuxStream } from '@libp2p/yamux/stream'

/** The private fields the check reads. */
interface Window { state: StreamState, recvWindow: number, recvWindowCapacity: number }

const sendWindowUpdate = YamuxStream.prototype.sendWindowUpdate
YamuxStream.prototype.sendWindowUpdate = function (this: YamuxStream): void {
  const w = this as unknown as Window
  if (w.state === StreamState.Established && w.recvWindowCapacity > w.recvWindow / 2) return
  sendWindowUpdate.call(this)
}
