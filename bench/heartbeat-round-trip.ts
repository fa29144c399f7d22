/**
 * One Raft round trip on the long-lived Raft stream: a Heartbeat to the
 * bench peer (bench/procs/transport-peer.ts), which answers at once with a
 * HeartbeatResp carrying the same readSeq.
 */
import type { Libp2pRaftTransport } from '../gossip/raft-transport.js'
import type { Message } from '../raft/core/messages.js'

const ROUND_TRIP_TIMEOUT_MS = 5000

/** Installs the transport's one message handler and returns a round-trip function from `from` to `to`. */
export function heartbeatRoundTrips (t: Libp2pRaftTransport, from: string, to: string): () => Promise<void> {
  const waiting = new Map<number, () => void>()
  t.onMessage((msg: Message) => {
    if (msg.type !== 'HeartbeatResp') return
    const w = waiting.get(msg.readSeq)
    if (w !== undefined) { waiting.delete(msg.readSeq); w() }
  })
  let seq = 0
  return async (): Promise<void> => {
    const readSeq = ++seq
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { waiting.delete(readSeq); reject(new Error(`no HeartbeatResp for readSeq ${readSeq} within ${ROUND_TRIP_TIMEOUT_MS} ms`)) }, ROUND_TRIP_TIMEOUT_MS)
      waiting.set(readSeq, () => { clearTimeout(timer); resolve() })
      t.send([{ type: 'Heartbeat', from, to, term: 1, commit: 0, readSeq, quiesce: false }])
    })
  }
}
