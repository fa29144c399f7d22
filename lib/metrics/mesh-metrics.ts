/**
 * The libp2p layer: who is up, and the counters of the stream protocols
 * (mesh calls, the Raft transport, the control stream), whose dropped and
 * bad frames are the first sign of a sick link.
 */
import type { Registry } from 'prom-client'
import type { GossipLinkStats } from '../../gossip/gossip-links.js'
import type { Member, MemberState } from '../../gossip/membership.js'
import type { MeshRpcStats } from '../../gossip/rpc.js'
import type { RaftTransportStats } from '../../gossip/raft-transport.js'
import { collectedCounter, collectedGauge, labelledGauge, perScrape } from './collected.js'

export interface MeshMetricsSource {
  members(): readonly Member[]
  rpc(): MeshRpcStats
  transport(): RaftTransportStats
  /** Frames on members' control streams dropped as undecodable or invalid. */
  badControlFrames(): number
  /** Members' gossipsub links that broke while their connection stayed up. */
  gossipLinks(): GossipLinkStats
}

const STATES: readonly MemberState[] = ['alive', 'failed', 'left']

export function registerMeshMetrics (registry: Registry, source: MeshMetricsSource): void {
  const members = perScrape(() => source.members())
  labelledGauge(registry, 'raftmesh_members', 'Other nodes in this node\'s membership view, by state.', ['state'],
    () => STATES.map(state => [{ state }, members().filter(m => m.state === state).length] as const))
  const rpc = perScrape(() => source.rpc())
  collectedCounter(registry, 'raftmesh_rpc_calls_total', 'Mesh calls this node made.', () => rpc().calls)
  collectedCounter(registry, 'raftmesh_rpc_calls_failed_total', 'Mesh calls this node made that rejected.', () => rpc().failed)
  collectedGauge(registry, 'raftmesh_rpc_calls_pending', 'Mesh calls waiting for an answer.', () => rpc().pending)
  collectedCounter(registry, 'raftmesh_rpc_served_total', 'Mesh calls this node\'s handlers ran to the end.', () => rpc().served)
  collectedCounter(registry, 'raftmesh_rpc_handler_errors_total', 'Mesh calls whose handler threw.', () => rpc().handlerErrors)
  collectedCounter(registry, 'raftmesh_rpc_busy_total', 'Mesh calls refused: too many running for their caller.', () => rpc().busy)
  collectedCounter(registry, 'raftmesh_rpc_bad_frames_total', 'Mesh call frames dropped as undecodable or invalid.', () => rpc().badFrames)
  collectedCounter(registry, 'raftmesh_rpc_not_member_total', 'Mesh call streams refused from non-members.', () => rpc().notMember)
  const transport = perScrape(() => source.transport())
  collectedCounter(registry, 'raftmesh_raft_messages_sent_total', 'Raft messages handed to streams.', () => transport().sent)
  collectedCounter(registry, 'raftmesh_raft_messages_received_total', 'Raft messages delivered to Raft.', () => transport().received)
  collectedCounter(registry, 'raftmesh_raft_messages_dropped_total', 'Outbound Raft messages dropped (full queue, peer gone).', () => transport().dropped)
  collectedCounter(registry, 'raftmesh_raft_messages_unreachable_total', 'Outbound Raft messages for nodes that are not live members.', () => transport().unreachable)
  collectedCounter(registry, 'raftmesh_raft_bad_frames_total', 'Inbound Raft frames dropped as undecodable or invalid.', () => transport().badFrames)
  collectedCounter(registry, 'raftmesh_raft_not_member_frames_total', 'Inbound Raft frames dropped from non-members.', () => transport().notMember)
  const links = perScrape(() => source.gossipLinks())
  collectedCounter(registry, 'raftmesh_gossip_links_broken_total', 'Members\' gossipsub links found broken while their connection stayed up.', () => links().broken)
  collectedCounter(registry, 'raftmesh_gossip_links_relinked_total', 'Broken gossipsub links made whole again.', () => links().relinked)
  collectedCounter(registry, 'raftmesh_gossip_links_resets_total', 'Member connections aborted because their gossipsub link could not be reopened.', () => links().resets)
  collectedCounter(registry, 'raftmesh_control_bad_frames_total', 'Frames on members\' control streams dropped as undecodable or invalid.', () => source.badControlFrames())
}
