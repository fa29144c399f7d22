/**
 * What a lib/ service (a cache, the event bus) needs from the Cluster that
 * constructs it: the node's identity, its mesh (membership and gossipsub
 * subscriptions), gossip channels, direct calls, a logger and a clock. The
 * Cluster builds one host and hands it to every service, so each service
 * can be built and tested on its own with real mesh nodes.
 */
import type { ChannelOptions, GossipChannel } from '../gossip/channel.js'
import type { Logger } from '../gossip/logger.js'
import type { Member } from '../gossip/membership.js'
import type { MeshNode } from '../gossip/node.js'
import type { MeshCalls } from './mesh-calls.js'

export interface ServiceHost {
  /** This node's id (the mesh's `nodeId`). */
  readonly nodeId: string
  readonly mesh: MeshNode
  /** Opens a gossip channel; one per topic per node (`mesh.channel` does). */
  readonly channel: (topic: string, opts?: ChannelOptions) => GossipChannel
  /** Direct calls to one member (gap repair, anti-entropy): the Cluster's MeshRpc. */
  readonly calls: MeshCalls
  /** A pino-compatible logger; services take a child with their name bound. */
  readonly logger: Logger
  /** Wall-clock milliseconds (Date.now by default); injected so expiry can be tested. */
  readonly clock: () => number
}

/**
 * Calls `fn` with a member's node id each time this node may have missed
 * its gossip on `topic` and can now hear it again: the member joined (or
 * rejoined after a cut), announced its subscription to the topic (which
 * gossipsub does on every new stream, possibly before the join handshake
 * has finished, hence both), or its gossip link broke while the
 * connection stayed up and is whole again (a cut all the same, though no
 * membership event shows it). Returns the unsubscribe.
 */
export function onPeerReconnect (mesh: MeshNode, topic: string, fn: (nodeId: string) => void): () => void {
  const pubsub = mesh.libp2p.services.pubsub
  const onSubscription = (evt: CustomEvent<{ peerId: { toString: () => string }, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (!evt.detail.subscriptions.some(s => s.topic === topic && s.subscribe)) return
    const nodeId = mesh.membership.nodeIdOfPeer(evt.detail.peerId.toString())
    if (nodeId !== null) fn(nodeId)
  }
  const onJoin = (m: Member): void => { fn(m.nodeId) }
  const onRelinked = (nodeId: string): void => { fn(nodeId) }
  pubsub.addEventListener('subscription-change', onSubscription)
  // One listener per cache or service is expected, not a leak.
  mesh.membership.setMaxListeners(mesh.membership.getMaxListeners() + 1)
  mesh.membership.on('join', onJoin)
  mesh.gossipLinks.setMaxListeners(mesh.gossipLinks.getMaxListeners() + 1)
  mesh.gossipLinks.on('relinked', onRelinked)
  return () => {
    pubsub.removeEventListener('subscription-change', onSubscription)
    mesh.membership.off('join', onJoin)
    mesh.membership.setMaxListeners(Math.max(10, mesh.membership.getMaxListeners() - 1))
    mesh.gossipLinks.off('relinked', onRelinked)
    mesh.gossipLinks.setMaxListeners(Math.max(10, mesh.gossipLinks.getMaxListeners() - 1))
  }
}
