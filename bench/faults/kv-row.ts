/**
 * The Raft KV row of the fault runs: three kv-node processes (the Raft
 * core, WAL and libp2p transport that the Cluster runs on, with a
 * key-value state machine, examples/kv-node.ts), three clients doing gets
 * (linearizable reads), puts and compare-and-sets on a few keys, under the
 * run's plan of faults, and the history checked for linearizability
 * (sim/linearizability.ts, Wing & Gong with Lowe's improvements).
 *
 * Kills restart the node (kill-torn with a torn WAL tail, as in the
 * cluster runs); pauses SIGSTOP it. On `network: 'netns'` each node runs in
 * a network namespace of its own (testkit/netns.ts) and a partition cuts
 * the node off from the other two by the network; the clients (in this
 * process) keep reaching every node by the lab's client links, so some of
 * their requests land on the minority side, where they meet what a real
 * client meets (a redirect to a leader that is gone, a 503, or silence
 * until the timeout) and any stale answer would show in the history. On
 * loopback partitions are skipped, as kv-node has no fault layer.
 */
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Prng } from '../../sim/prng.js'
import { checkKvHistory, type KvInput, type KvOutput, type Operation } from '../../sim/linearizability.js'
import { LocalKvCluster } from '../../testkit/local-cluster.js'
import { NetnsLab } from '../../testkit/netns.js'
import { planFaults, type FaultWindow } from './nemesis.js'
import { tearWalTail } from './torn-tail.js'

const KEYS = 5
/** Long enough for a request that waited out a failover; longer ones count as unknown outcomes. */
const TIMEOUT_MS = 5000

export interface KvRunResult {
  readonly seed: number
  readonly network: 'loopback' | 'netns'
  readonly ok: boolean
  /** The checker ran out of search steps: neither proven nor refuted. */
  readonly undecided: boolean
  readonly explanation: string | null
  /** The faults applied; on loopback the plan's partitions are not among them (see `partitionsSkipped`). */
  readonly faults: FaultWindow[]
  readonly partitionsSkipped: number
  readonly ops: number
  /** Operations whose outcome is unknown (timed out or failed after they may have been proposed). */
  readonly unknown: number
  readonly wallMs: number
}

/** One client's operation over HTTP, with its outcome as the checker reads it (undefined: unknown). */
async function perform (c: LocalKvCluster, input: KvInput): Promise<KvOutput | undefined> {
  const path = `/kv/${input.key}`
  try {
    switch (input.op) {
      case 'get': {
        const r = await c.client.send('GET', path, undefined, { timeoutMs: TIMEOUT_MS })
        if (r.status === 200) return { ok: true, value: r.body.value as string }
        if (r.status === 404) return { ok: true, value: null }
        return undefined
      }
      case 'put':
        return (await c.client.send('PUT', path, input.value, { timeoutMs: TIMEOUT_MS })).status === 200 ? { ok: true } : undefined
      case 'cas': {
        const r = await c.client.send('POST', `${path}/cas`, JSON.stringify({ expect: input.expect, value: input.value }), { timeoutMs: TIMEOUT_MS })
        if (r.status === 200) return { ok: true }
        if (r.status === 409) return { ok: false, value: (r.body.value as string | undefined) ?? null }
        return undefined
      }
      case 'delete':
        return (await c.client.send('DELETE', path, undefined, { timeoutMs: TIMEOUT_MS })).status === 200 ? { ok: true } : undefined
    }
  } catch {
    return undefined
  }
}

export async function runKvOnce (o: { seed: number, durationMs: number, network: 'loopback' | 'netns' }): Promise<KvRunResult> {
  const launched = performance.now()
  const lab = o.network === 'netns' ? await NetnsLab.create({ hosts: 3, clientLinks: true }) : null
  let c: LocalKvCluster
  try {
    c = await LocalKvCluster.start({ nodes: 3, placement: lab === null ? undefined : i => lab.placement(i) })
  } catch (err) {
    await lab?.destroy()
    throw err
  }
  const history: Operation[] = []
  const windows: FaultWindow[] = []
  let stop = false
  const client = async (id: number): Promise<void> => {
    const rng = new Prng(o.seed * 7 + id)
    let n = 0
    // What this client last saw of each key: its compare-and-sets expect that, so some succeed and some lose races.
    const seen = new Map<string, string | null>()
    while (!stop) {
      const key = `k${rng.int(0, KEYS - 1)}`
      const value = `c${id}.${++n}`
      const pick = rng.next()
      const input: KvInput = pick < 0.5 ? { op: 'get', key } : pick < 0.8 ? { op: 'put', key, value } : { op: 'cas', key, expect: seen.get(key) ?? null, value }
      const call = performance.now()
      const output = await perform(c, input)
      if (output === undefined) {
        history.push({ clientId: id, input, call, return: Infinity })
        // No answer: the cluster is between leaders; don't pile up operations of unknown outcome.
        await sleep(100)
        continue
      }
      history.push({ clientId: id, input, call, return: performance.now(), output })
      if (input.op === 'get' || (input.op === 'cas' && !output.ok)) seen.set(key, output.value ?? null)
      else seen.set(key, input.value)
    }
  }
  let explanation: string | null = null
  let undecided = false
  let ok = false
  let partitionsSkipped = 0
  try {
    await c.waitForLeader()
    const clients = [0, 1, 2].map(async i => { await client(i) })
    await sleep(1000)
    const rng = new Prng(o.seed ^ 0x5eed)
    for (const f of planFaults(o.seed, { durationMs: o.durationMs, sessionTtlMs: 2000 })) {
      if (f.kind === 'partition' && lab === null) {
        partitionsSkipped++
        await sleep(f.holdMs + f.gapMs)
        continue
      }
      const leader = c.nodes.indexOf(await c.waitForLeader())
      const node = f.victim === 'leader' ? leader : rng.pick([0, 1, 2].filter(i => i !== leader))
      const n = c.nodes[node]
      const from = performance.now()
      let tornBytes: number | undefined
      if (f.kind === 'partition' && lab !== null) {
        await lab.partition([[0, 1, 2].filter(i => i !== node), [node]])
        await sleep(f.holdMs)
        await lab.heal()
      } else if (f.kind === 'pause') {
        c.signal(n, 'SIGSTOP')
        await sleep(f.holdMs)
        c.signal(n, 'SIGCONT')
      } else {
        await c.kill(n)
        await sleep(f.holdMs)
        if (f.kind === 'kill-torn') tornBytes = (await tearWalTail(join(n.dataDir, 'raft'), rng))?.bytes
        await c.launch(n)
      }
      windows.push({ kind: f.kind, node, wasLeader: node === leader, from: from - launched, to: performance.now() - launched, ...(tornBytes === undefined ? {} : { tornBytes }) })
      await sleep(f.gapMs)
    }
    await sleep(2000)
    stop = true
    await Promise.all(clients)
    const verdict = checkKvHistory(history)
    ok = verdict.ok
    undecided = verdict.timedOut === true
    explanation = verdict.ok ? null : `key ${verdict.key ?? '?'}: ${verdict.explanation ?? (undecided ? 'search budget exhausted' : 'not linearizable')}`
  } catch (err) {
    explanation = `the run could not finish: ${(err as Error).message}`
  } finally {
    stop = true
    try {
      await c.stop()
    } finally {
      await lab?.destroy()
    }
  }
  return { seed: o.seed, network: o.network, ok, undecided, explanation, faults: windows, partitionsSkipped, ops: history.length, unknown: history.filter(h => h.output === undefined).length, wallMs: performance.now() - launched }
}
