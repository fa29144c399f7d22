/**
 * WAL benchmark: what durable storage costs on this machine.
 *
 * (a) the fsync floor: write 4 KiB + fsync (and + fdatasync, which is what
 *     FileLogStore uses), so the numbers below can be read against the disk;
 * (b) FileLogStore.save of one 100-byte entry at a time, sequentially;
 * (c) group commit: 1, 16 and 64 concurrent proposers, each saving one
 *     100-byte entry at a time in a loop, for a bounded time and count.
 *
 * Runs in a temporary directory under os.tmpdir() (or `opts.dir`), removed
 * afterwards. `node --import tsx bench/wal.ts` prints JSON on stdout and a
 * table on stderr.
 */
import { mkdtemp, open, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as hdr from 'hdr-histogram-js'
import { FileLogStore } from '../raft/storage/wal.js'
import { EntryType, type Entry } from '../raft/types.js'

/** Options for {@link runWalBench}; every field has a default. */
export interface WalBenchOptions {
  /** Parent of the temporary data directory. Default os.tmpdir(). */
  dir?: string
  /** Iterations of the raw write + fsync loops. Default 2000. */
  fsyncIterations?: number
  /** Sequential single-entry saves. Default 2000. */
  sequentialSaves?: number
  /** Concurrent proposer counts for the group-commit runs. Default [1, 16, 64]. */
  proposers?: number[]
  /** Length of each group-commit run. Default 3000 ms. */
  durationMs?: number
  /** Upper bound on entries per group-commit run. Default 200000. */
  maxEntries?: number
  /** Bytes of data per entry. Default 100. */
  entryBytes?: number
}

/** Latency percentiles in microseconds. */
export interface LatencyUs {
  count: number
  p50: number
  p99: number
  max: number
  mean: number
}

export interface GroupCommitResult {
  proposers: number
  entries: number
  durationMs: number
  entriesPerSec: number
  /** Latency of each save as its proposer saw it. */
  saveUs: LatencyUs
}

export interface WalBenchResult {
  bench: 'wal'
  machine: { node: string, platform: string, cpus: number, dir: string }
  /** 4 KiB write + fsync. */
  fsyncFloorUs: LatencyUs
  /** 4 KiB write + fdatasync, the call FileLogStore makes. */
  fdatasyncFloorUs: LatencyUs
  /** FileLogStore.save of one entry, awaited before the next. */
  sequentialSaveUs: LatencyUs & { entryBytes: number }
  groupCommit: GroupCommitResult[]
}

/** Microsecond latencies into an HDR histogram (the pure-JS build, no WebAssembly). */
class Recorder {
  readonly #h = hdr.build({ useWebAssembly: false, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })

  /** Records the time since `startMs` (a performance.now() reading). */
  since (startMs: number): void {
    this.#h.recordValue(Math.max(1, Math.round((performance.now() - startMs) * 1000)))
  }

  summary (): LatencyUs {
    const h = this.#h
    return { count: h.totalCount, p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), max: h.maxValue, mean: Math.round(h.mean) }
  }
}

async function syncFloor (dir: string, name: string, iterations: number, how: 'sync' | 'datasync'): Promise<LatencyUs> {
  const handle = await open(join(dir, name), 'w')
  const block = Buffer.alloc(4096, 0xab)
  const rec = new Recorder()
  try {
    for (let i = 0; i < iterations; i++) {
      const start = performance.now()
      await handle.write(block, 0, block.length, i * block.length)
      await handle[how]()
      rec.since(start)
    }
  } finally {
    await handle.close()
  }
  return rec.summary()
}

function makeEntry (index: number, data: Uint8Array): Entry {
  return { index, term: 1, type: EntryType.Normal, data }
}

async function sequentialSaves (dir: string, count: number, data: Uint8Array): Promise<LatencyUs> {
  const store = new FileLogStore({ dir })
  await store.open()
  const rec = new Recorder()
  try {
    for (let i = 1; i <= count; i++) {
      const start = performance.now()
      await store.save([makeEntry(i, data)], null)
      rec.since(start)
    }
  } finally {
    await store.close()
  }
  return rec.summary()
}

async function groupCommit (dir: string, proposers: number, durationMs: number, maxEntries: number, data: Uint8Array): Promise<GroupCommitResult> {
  const store = new FileLogStore({ dir })
  await store.open()
  const rec = new Recorder()
  let next = 1
  const started = performance.now()
  const deadline = started + durationMs
  // Index taken and save() called in one synchronous step, so calls reach the store in index order.
  const proposer = async (): Promise<void> => {
    while (performance.now() < deadline && next <= maxEntries) {
      const start = performance.now()
      await store.save([makeEntry(next++, data)], null)
      rec.since(start)
    }
  }
  try {
    await Promise.all(Array.from({ length: proposers }, proposer))
  } finally {
    await store.close()
  }
  const elapsed = performance.now() - started
  const entries = next - 1
  return { proposers, entries, durationMs: Math.round(elapsed), entriesPerSec: Math.round(entries / (elapsed / 1000)), saveUs: rec.summary() }
}

/** Runs the WAL benchmark (see the module comment) and returns its numbers. */
export async function runWalBench (opts: WalBenchOptions = {}): Promise<WalBenchResult> {
  const parent = opts.dir ?? tmpdir()
  const iterations = opts.fsyncIterations ?? 2000
  const entryBytes = opts.entryBytes ?? 100
  const data = new Uint8Array(entryBytes).fill(0x5a)
  const root = await mkdtemp(join(parent, 'raftmesh-wal-bench-'))
  try {
    const fsyncFloorUs = await syncFloor(root, 'fsync.bin', iterations, 'sync')
    const fdatasyncFloorUs = await syncFloor(root, 'fdatasync.bin', iterations, 'datasync')
    const sequentialSaveUs = { ...await sequentialSaves(join(root, 'sequential'), opts.sequentialSaves ?? 2000, data), entryBytes }
    const groupCommitResults: GroupCommitResult[] = []
    for (const n of opts.proposers ?? [1, 16, 64]) {
      groupCommitResults.push(await groupCommit(join(root, `group-${n}`), n, opts.durationMs ?? 3000, opts.maxEntries ?? 200_000, data))
    }
    return {
      bench: 'wal',
      machine: { node: process.version, platform: `${process.platform}/${process.arch}`, cpus: cpus().length, dir: parent },
      fsyncFloorUs,
      fdatasyncFloorUs,
      sequentialSaveUs,
      groupCommit: groupCommitResults
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

/** A short human-readable table of a {@link runWalBench} result. */
export function walTable (r: WalBenchResult): string {
  const row = (label: string, l: LatencyUs): string => `${label.padEnd(32)} ${String(l.p50).padStart(8)} ${String(l.p99).padStart(8)}`
  return [
    `WAL on ${r.machine.dir} (${r.machine.platform}, ${r.machine.cpus} cpus, node ${r.machine.node})`,
    `${'measure'.padEnd(32)} ${'p50 us'.padStart(8)} ${'p99 us'.padStart(8)}`,
    row('4 KiB write + fsync', r.fsyncFloorUs),
    row('4 KiB write + fdatasync', r.fdatasyncFloorUs),
    row(`save(1 x ${r.sequentialSaveUs.entryBytes} B), sequential`, r.sequentialSaveUs),
    `${'proposers'.padStart(9)} ${'entries/s'.padStart(11)} ${'save p50 us'.padStart(12)} ${'save p99 us'.padStart(12)}`,
    ...r.groupCommit.map(g => `${String(g.proposers).padStart(9)} ${String(g.entriesPerSec).padStart(11)} ${String(g.saveUs.p50).padStart(12)} ${String(g.saveUs.p99).padStart(12)}`)
  ].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runWalBench()
  console.log(JSON.stringify(result, null, 2))
  console.error(walTable(result))
}
