/**
 * Simulated clients: each runs one operation at a time against some node and
 * records it in a history. Writes go through the log; reads use ReadIndex.
 * An operation whose fate cannot be known (its node crashed, it timed out)
 * is recorded with an unknown outcome; one that provably never took effect
 * (refused, or its log slot went to another entry) is left out.
 */
import { NotLeaderError, TransferInProgressError } from '../errors.js'
import { EntryType, type Entry, type NodeId } from '../types.js'
import { decodeKv, encodeKv, type KvCommand } from './kv-machine.js'
import type { SimNode } from './sim-node.js'
import type { Simulator } from './simulator.js'

export type KvInput =
  | { op: 'get', key: string }
  | { op: 'put', key: string, value: string }
  | { op: 'cas', key: string, expect: string | null, value: string }
  | { op: 'delete', key: string }

export interface KvOutput { ok: boolean, value?: string | null }

/** One completed or unresolved client operation; `return` is Infinity when unknown. */
export interface HistoryOp {
  clientId: number
  input: KvInput
  call: number
  return: number
  output?: KvOutput
}

interface Pending {
  readonly client: number
  readonly opId: number
  readonly input: KvInput
  readonly call: number
  readonly node: SimNode
  readonly timeoutAt: number
  /** Writes: the log index the proposal got. */
  readonly index?: number
  /** Reads: the ReadIndex context and, once confirmed, the index to wait for. */
  readonly ctx?: string
  readIndex?: number
}

const KEYS = ['x', 'y', 'z']
const PROBE_CLIENT = -1
const TIMEOUT_MS = 600

export class SimClients {
  readonly history: HistoryOp[] = []
  private clock = 0
  private opSeq = 0
  private readonly busy = new Map<number, Pending>()
  private readonly hints = new Map<number, NodeId>()
  private readonly seen = new Map<string, string[]>()
  readonly probe = { active: false, done: false, doneAt: 0 }

  constructor (private readonly sim: Simulator, private readonly count: number) {}

  start (): void {
    for (let c = 0; c < this.count; c++) this.schedule(c, this.sim.rng.int(0, 100))
  }

  private schedule (client: number, delay: number): void {
    this.sim.queue.push(this.sim.now + delay, { t: 'client', client })
  }

  act (client: number): void {
    if (client === PROBE_CLIENT) {
      this.actProbe()
      return
    }
    const p = this.busy.get(client)
    if (p !== undefined) {
      if (this.sim.now >= p.timeoutAt) this.resolve(p, undefined)
      return
    }
    const up = this.sim.nodes.filter(n => n.up)
    const hinted = this.sim.byId.get(this.hints.get(client) ?? '')
    const node = hinted?.up === true && this.sim.rng.chance(0.5) ? hinted : this.sim.rng.pick(up)
    if (node === undefined) {
      this.schedule(client, 20)
      return
    }
    const input = this.randomInput(client)
    try {
      this.issue(client, node, input)
    } catch (err) {
      if (!(err instanceof NotLeaderError || err instanceof TransferInProgressError)) throw err
      if (err instanceof NotLeaderError && err.leader !== null) this.hints.set(client, err.leader)
      else this.hints.delete(client)
      this.schedule(client, this.sim.rng.int(1, 30))
    }
  }

  private issue (client: number, node: SimNode, input: KvInput): void {
    const opId = ++this.opSeq
    const base = { client, opId, input, node, timeoutAt: this.sim.now + TIMEOUT_MS }
    if (input.op === 'get') {
      const ctx = `r${opId}`
      node.core.readIndex(ctx)
      this.busy.set(client, { ...base, call: ++this.clock, ctx })
    } else {
      const { index } = node.core.propose(encodeKv({ client, opId, cmd: input as KvCommand }))
      this.busy.set(client, { ...base, call: ++this.clock, index })
    }
    this.schedule(client, TIMEOUT_MS)
    this.sim.pump(node)
  }

  private randomInput (client: number): KvInput {
    const rng = this.sim.rng
    const key = rng.pick(KEYS)
    const value = `${client}.${this.opSeq + 1}`
    const r = rng.next()
    if (r < 0.4) return { op: 'get', key }
    if (r < 0.7) return { op: 'put', key, value }
    if (r < 0.9) {
      const seen = this.seen.get(key) ?? []
      const expect = seen.length > 0 && rng.chance(0.8) ? rng.pick(seen) : null
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
    if (output === undefined) this.sim.stats.opsUnknown++
    else this.sim.stats.opsOk++
    if (output?.value !== undefined && output.value !== null) this.remember(p.input.key, output.value)
    this.schedule(p.client, this.sim.rng.int(0, 20))
  }

  /** The operation provably had no effect: forget it. */
  private abandon (p: Pending): void {
    this.busy.delete(p.client)
    this.schedule(p.client, this.sim.rng.int(0, 20))
  }

  private remember (key: string, value: string): void {
    const list = this.seen.get(key) ?? []
    list.push(value)
    if (list.length > 4) list.shift()
    this.seen.set(key, list)
  }

  /** Applies a committed entry to the node's state machine and answers its proposer. */
  onApply (node: SimNode, e: Entry): void {
    const env = e.type === EntryType.Normal ? decodeKv(e.data) : null
    const result = env === null ? null : node.kv.apply(env.cmd)
    if (env?.client === PROBE_CLIENT && this.probe.active && !this.probe.done) {
      this.probe.done = true
      this.probe.doneAt = this.sim.now
    }
    for (const p of this.busy.values()) {
      if (p.node !== node || p.index !== e.index) continue
      if (env === null || result === null || env.client !== p.client || env.opId !== p.opId) {
        // Another entry took this slot; ours existed only here, so it never committed.
        this.abandon(p)
      } else if (p.input.op === 'cas') {
        if (p.input.value !== undefined && result.ok) this.remember(p.input.key, p.input.value)
        this.resolve(p, result.ok ? { ok: true } : { ok: false, value: result.value })
      } else {
        if (p.input.op === 'put') this.remember(p.input.key, p.input.value)
        this.resolve(p, { ok: true })
      }
    }
  }

  onReadState (node: SimNode, ctx: string, index: number): void {
    for (const p of this.busy.values()) {
      if (p.node !== node || p.ctx !== ctx) continue
      if (index < 0) this.abandon(p)
      else p.readIndex = index
    }
  }

  /** Serves confirmed reads once the node has applied up to their read index (§6.4 step 4). */
  onApplied (node: SimNode): void {
    for (const p of [...this.busy.values()]) {
      if (p.node !== node || p.readIndex === undefined || node.core.log.applied < p.readIndex) continue
      this.resolve(p, { ok: true, value: node.kv.get(p.input.key) })
    }
  }

  onCrash (node: SimNode): void {
    for (const p of [...this.busy.values()]) {
      if (p.node !== node) continue
      if (p.input.op === 'get') this.abandon(p)
      else this.resolve(p, undefined)
    }
  }

  /** After faults stop: keep proposing a marker write until one commits. */
  startProbe (): { readonly done: boolean, readonly doneAt: number } {
    this.probe.active = true
    this.schedule(PROBE_CLIENT, 0)
    return this.probe
  }

  private actProbe (): void {
    if (this.probe.done) return
    const l = this.sim.leader()
    if (l !== undefined) {
      try {
        l.core.propose(encodeKv({ client: PROBE_CLIENT, opId: ++this.opSeq, cmd: { op: 'put', key: '__probe', value: String(this.opSeq) } }))
        this.sim.pump(l)
      } catch {
        // A leader mid-transfer refuses; try again shortly.
      }
    }
    this.schedule(PROBE_CLIENT, 50)
  }

  /** Ends the run: writes still pending have unknown outcomes; pending reads had no effect. */
  finish (): void {
    for (const p of [...this.busy.values()]) {
      if (p.input.op === 'get') this.busy.delete(p.client)
      else this.resolve(p, undefined)
    }
  }
}
