/**
 * Fault injection for tests that run several mesh nodes in one process,
 * where network namespaces are not available:
 *
 * - partitions: each node's connection gater refuses the peers outside its
 *   side, and existing connections across the cut are closed, so both
 *   sides see the others fail exactly as after a network split; `heal`
 *   lifts the cut and redials at once;
 * - Raft frame faults on the transports: drop (with a seeded probability or
 *   a predicate), delay, and one-way cuts between node ids.
 */
import type { Message } from '../raft/index.js'
import { InvalidArgumentError } from './errors.js'
import type { MeshNode } from './node.js'
import type { Libp2pRaftTransport } from './raft-transport.js'

export interface FaultOptions {
  /** Source of randomness for drop rates; pass a seeded one for reproducible runs. */
  readonly random?: () => number
}

export class FaultInjector {
  private readonly meshes: MeshNode[]
  private readonly transports = new Set<Libp2pRaftTransport>()
  private readonly random: () => number
  private dropRate = 0
  private dropWhen: ((m: Message) => boolean) | null = null
  private delayOf: ((m: Message) => number) | null = null
  private readonly cuts = new Set<string>()
  /** Raft messages dropped by this injector. */
  dropped = 0

  constructor (meshes: Iterable<MeshNode>, opts: FaultOptions = {}) {
    this.meshes = [...meshes]
    this.random = opts.random ?? Math.random
  }

  /** Adds a node created after the injector (e.g. a restarted one); it starts unpartitioned. */
  add (mesh: MeshNode): void {
    this.meshes.push(mesh)
  }

  /**
   * Splits the nodes into sides that cannot reach each other. Nodes not
   * named in any side form one more side together. Resolves once the
   * connections across the cut are closed.
   */
  async partition (...sides: ReadonlyArray<readonly MeshNode[]>): Promise<void> {
    const named = new Set(sides.flat())
    const rest = this.meshes.filter(m => !named.has(m))
    const all = rest.length > 0 ? [...sides, rest] : sides
    const sideOf = new Map<MeshNode, number>()
    all.forEach((side, i) => {
      for (const m of side) {
        if (sideOf.has(m)) throw new InvalidArgumentError(`node ${m.nodeId} is on two sides of the partition`)
        sideOf.set(m, i)
      }
    })
    const closing: Array<Promise<void>> = []
    for (const m of this.meshes) {
      const others = this.meshes.filter(o => sideOf.get(o) !== sideOf.get(m))
      m.gate.deny(others.map(o => o.peerId))
      for (const o of others) closing.push(m.libp2p.hangUp(o.libp2p.peerId).catch(() => {}))
    }
    await Promise.all(closing)
  }

  /** Cuts one node off from all others. */
  async isolate (mesh: MeshNode): Promise<void> {
    await this.partition([mesh])
  }

  /** Lifts every partition and has every node redial at once. */
  heal (): void {
    for (const m of this.meshes) m.gate.allowAll()
    for (const m of this.meshes) m.redialNow()
  }

  /** Applies the Raft frame faults below to this transport's outbound messages. */
  attach (transport: Libp2pRaftTransport): void {
    this.transports.add(transport)
    transport.fault = (m, direction) => direction === 'out' ? this.judge(m) : 0
  }

  detach (transport: Libp2pRaftTransport): void {
    this.transports.delete(transport)
    transport.fault = null
  }

  /** Drops each Raft message with probability `rate`, or those matching `when`. */
  dropRaft (rate: number, when: ((m: Message) => boolean) | null = null): void {
    if (!(rate >= 0 && rate <= 1)) throw new InvalidArgumentError(`drop rate must be in [0, 1], got ${rate}`)
    this.dropRate = rate
    this.dropWhen = when
  }

  /** Delays every Raft message by `ms` (or by what the function says for it). */
  delayRaft (ms: number | ((m: Message) => number)): void {
    this.delayOf = typeof ms === 'number' ? () => ms : ms
  }

  /** Drops Raft messages from `from` to `to` (one direction). */
  cutRaft (from: string, to: string): void {
    this.cuts.add(`${from}>${to}`)
  }

  /** Removes every Raft frame fault. */
  clearRaft (): void {
    this.dropRate = 0
    this.dropWhen = null
    this.delayOf = null
    this.cuts.clear()
  }

  private judge (m: Message): number | null {
    if (this.cuts.has(`${m.from}>${m.to}`) || (this.dropWhen?.(m) ?? false) || (this.dropRate > 0 && this.random() < this.dropRate)) {
      this.dropped++
      return null
    }
    return Math.max(0, this.delayOf?.(m) ?? 0)
  }
}
