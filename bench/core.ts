/**
 * `npm run bench -- core`: proposals through a 3-node cluster of real
 * RaftNode drivers on the in-memory transport, first with in-memory
 * storage (the core and driver alone), then with the file WAL (fsync on
 * every Ready).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MemoryLogStore, type LogStore } from '../raft/storage/log-store.js'
import { RaftNode } from '../raft/driver/node.js'
import { MemoryNetwork } from '../raft/driver/transport.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { Latency, type LatencySummary } from './latency.js'

export interface CoreBenchOptions {
  /** Seconds of each throughput run. Default 3. */
  readonly seconds?: number
  /** Proposals kept in flight for the throughput run. Default 256. */
  readonly inFlight?: number
}

export interface CoreModeResult {
  storage: 'memory' | 'disk'
  sequential: LatencySummary
  throughput: { inFlight: number, proposals: number, seconds: number, perSecond: number }
}

const ids = ['a', 'b', 'c']
const payload = new Uint8Array(100).fill(7)

async function runMode (storage: 'memory' | 'disk', seconds: number, inFlight: number): Promise<CoreModeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-core-'))
  const net = new MemoryNetwork()
  const nodes: Array<RaftNode<number>> = []
  try {
    for (const id of ids) {
      const store: LogStore = storage === 'memory' ? new MemoryLogStore() : new FileLogStore({ dir: join(dir, id) })
      let applied = 0
      nodes.push(await RaftNode.start({
        id, store, transport: net.join(id), bootstrap: ids, tickMs: 50, snapshotEvery: 50_000,
        stateMachine: { apply: () => ++applied, snapshot: () => new Uint8Array(8), restore: () => {} }
      }))
    }
    const leader = await waitForLeader(nodes)
    const seq = new Latency()
    const seqEnd = performance.now() + seconds * 1000
    for (let i = 0; i < 5000 && performance.now() < seqEnd; i++) {
      const t0 = performance.now()
      await leader.propose(payload)
      seq.since(t0)
    }
    let done = 0
    const start = performance.now()
    const end = start + seconds * 1000
    const worker = async (): Promise<void> => {
      while (performance.now() < end && done < 10_000_000) {
        await leader.propose(payload)
        done++
      }
    }
    await Promise.all(Array.from({ length: inFlight }, worker))
    const elapsed = (performance.now() - start) / 1000
    return {
      storage,
      sequential: seq.summary(),
      throughput: { inFlight, proposals: done, seconds: Math.round(elapsed * 100) / 100, perSecond: Math.round(done / elapsed) }
    }
  } finally {
    for (const n of nodes) await n.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

async function waitForLeader<R> (nodes: Array<RaftNode<R>>): Promise<RaftNode<R>> {
  const end = Date.now() + 10_000
  for (;;) {
    const l = nodes.find(n => n.isLeader)
    if (l !== undefined) return l
    if (Date.now() > end) throw new Error('no leader elected within 10 s')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

export async function runCoreBench (opts: CoreBenchOptions = {}): Promise<{ bench: 'core', modes: CoreModeResult[] }> {
  const seconds = opts.seconds ?? 3
  const inFlight = opts.inFlight ?? 256
  const modes = [await runMode('memory', seconds, inFlight), await runMode('disk', seconds, inFlight)]
  return { bench: 'core', modes }
}

export function coreTable (r: { modes: CoreModeResult[] }): string {
  const rows = r.modes.map(m =>
    `${m.storage.padEnd(8)} ${String(m.sequential.p50Ms).padStart(10)} ${String(m.sequential.p99Ms).padStart(10)} ${String(m.throughput.perSecond).padStart(12)} (${m.throughput.inFlight} in flight)`)
  return ['storage  seq p50 ms seq p99 ms  proposals/s', ...rows].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runCoreBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(coreTable(r))
}
