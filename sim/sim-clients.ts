/**
 * Simulated clients: each runs one operation at a time against some node,
 * through the driver's public API (propose, readBarrier), and records it in
 * a history for the linearizability checker. An operation whose fate cannot
 * be known (its node crashed, it timed out, its leader lost office) is
 * recorded with an unknown outcome; one that provably never took effect
 * (refused at once) is left out.
 */
import { NotLeaderError, TransferInProgressError } from '../raft/errors.js'
import type { NodeId } from '../raft/types.js'
import { encodeKv, type KvCommand } from './kv-machine.js'
import type { KvInput, KvOutput, Operation } from './linearizability.js'
import type { Prng } from './prng.js'
import type { Scheduler } from './sim-clock.js'
import type { SimNode } from './sim-node.js'

interface Pending {
  readonly client: number
  readonly input: KvInput
  readonly call: number
  readonly node: SimNode
  readonly incarnation: number
}

const KEYS = ['x', 'y', 'z']
/** How long the driver may take before an operation's outcome is unknown. */
export const CLIENT_TIMEOUT_MS = 600

export interface ClientStats {
  opsOk: number
  opsUnknown: number
}

export class SimClients {
  readonly history: Operation[] = []
  readonly stats: ClientStats = { opsOk: 0, opsUnknown: 0 }
  private clock = 0
  private opSeq = 0
  private readonly busy = new Map<number, Pending>()
  private readonly hints = new Map<number, NodeId>()
  private readonly seen = new Map<string, string[]>()
  private stopped = false
  /** Clients start no operation before this simulated time (a lull, so that the group may quiesce). */
  pausedUntil = 0

  constructor (
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly nodes: readonly SimNode[],
    private readonly count: number
  ) {}

  start (): void {
    for (let c = 0; c < this.count; c++) this.schedule(c, this.rng.int(0, 100))
  }

  /** Operations still waiting for an answer. */
  get pending (): number {
    return this.busy.size
  }

  private schedule (client: number, delay: number): void {
    if (!this.stopped) this.scheduler.at(this.scheduler.now + delay, () => { this.act(client) })
  }

  private act (client: number): void {
    if (this.busy.has(client)) return
    if (this.scheduler.now < this.pausedUntil) {
      // Resume after the lull, unless the clients stopped meanwhile.
      this.scheduler.at(this.pausedUntil, () => { if (!this.stopped) this.act(client) })
      return
    }
    const running = this.nodes.filter(n => n.raft !== null)
    const hinted = running.find(n => n.id === this.hints.get(client))
    const node = hinted !== undefined && this.rng.chance(0.7) ? hinted : this.rng.pick(running)
    if (node === undefined) {
      this.schedule(client, 20)
      return
    }
    this.issue(client, node, this.randomInput(client))
  }

  private issue (client: number, node: SimNode, input: KvInput): void {
    const raft = node.raft
    const sm = node.sm
    if (raft === null || sm === null) return
    const p: Pending = { client, input, node, incarnation: node.incarnation, call: ++this.clock }
    this.busy.set(client, p)
    const current = (): boolean => this.busy.get(client) === p
    const opts = { timeoutMs: CLIENT_TIMEOUT_MS }
    if (input.op === 'get') {
      raft.readBarrier(opts).then(() => {
        if (current()) this.resolve(p, { ok: true, value: sm.kv.get(input.key) })
      }, err => { if (current()) this.refused(p, err) })
      return
    }
    raft.propose(encodeKv({ client, opId: ++this.opSeq, cmd: input as KvCommand }), opts).then(({ result }) => {
      if (!current()) return
      if (result === undefined || result === null) {
        this.resolve(p, undefined)
      } else if (input.op === 'cas') {
        if (result.ok) this.remember(input.key, input.value)
        this.resolve(p, result.ok ? { ok: true } : { ok: false, value: result.value })
      } else {
        if (input.op === 'put') this.remember(input.key, input.value)
        this.resolve(p, { ok: true })
      }
    }, err => { if (current()) this.refused(p, err) })
  }

  /** A refusal before the log took the operation means it had no effect; anything else leaves it unknown. */
  private refused (p: Pending, err: unknown): void {
    if (err instanceof NotLeaderError) {
      if (err.leader !== null) this.hints.set(p.client, err.leader)
      else this.hints.delete(p.client)
      this.abandon(p)
    } else if (err instanceof TransferInProgressError || p.input.op === 'get') {
      this.abandon(p)
    } else {
      this.resolve(p, undefined)
    }
  }

  private randomInput (client: number): KvInput {
    const key = this.rng.pick(KEYS)
    const value = `${client}.${this.opSeq + 1}`
    const r = this.rng.next()
    if (r < 0.4) return { op: 'get', key }
    if (r < 0.7) return { op: 'put', key, value }
    if (r < 0.9) {
      const seen = this.seen.get(key) ?? []
      const expect = seen.length > 0 && this.rng.chance(0.8) ? this.rng.pick(seen) : null
      return { op: 'cas', key, expect, value }
    }
    return { op: 'delete', key }
  }

  /** Records the outcome (undefined = unknown) and frees the client. */
  private resolve (p: Pending, output: KvOutput | undefined): void {
    this.busy.delete(p.client)
    this.history.push({
      clientId: p.client,
      input: p.input,
      call: p.call,
      return: output === undefined ? Infinity : ++this.clock,
      ...(output === undefined ? {} : { output })
    })
    if (output === undefined) this.stats.opsUnknown++
    else this.stats.opsOk++
    if (output?.value !== undefined && output.value !== null) this.remember(p.input.key, output.value)
    this.schedule(p.client, this.rng.int(0, 20))
  }

  /** The operation provably had no effect: forget it. */
  private abandon (p: Pending): void {
    this.busy.delete(p.client)
    this.schedule(p.client, this.rng.int(1, 30))
  }

  private remember (key: string, value: string): void {
    const list = this.seen.get(key) ?? []
    list.push(value)
    if (list.length > 4) list.shift()
    this.seen.set(key, list)
  }

  /** The node crashed: its writes may or may not have committed; its reads had no effect. */
  onCrash (node: SimNode): void {
    for (const p of [...this.busy.values()]) {
      if (p.node !== node) continue
      if (p.input.op === 'get') this.abandon(p)
      else this.resolve(p, undefined)
    }
  }

  /** Clients start no new operations. */
  stop (): void {
    this.stopped = true
  }

  /** Ends the run: writes still pending have unknown outcomes. */
  finish (): void {
    this.stop()
    for (const p of [...this.busy.values()]) {
      if (p.input.op === 'get') this.busy.delete(p.client)
      else this.resolve(p, undefined)
    }
  }
}
