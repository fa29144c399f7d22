/**
 * The set of peers this node refuses to connect to, consulted by the libp2p
 * connection gater on every dial and every inbound connection. Empty in
 * production; the fault layer (fault.ts) fills it to cut the network
 * between nodes of one process.
 */
export class PeerGate {
  private readonly denied = new Set<string>()

  denies (peerId: string): boolean {
    return this.denied.has(peerId)
  }

  deny (peerIds: Iterable<string>): void {
    for (const p of peerIds) this.denied.add(p)
  }

  allow (peerIds: Iterable<string>): void {
    for (const p of peerIds) this.denied.delete(p)
  }

  allowAll (): void {
    this.denied.clear()
  }
}
