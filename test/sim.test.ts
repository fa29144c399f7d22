import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { replayCommand, runSeeds, TEST_SEEDS, type SeedSummary } from '../sim/run-seeds.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

// The proof of the Raft code that ships: the real driver and log store on a
// simulated disk, network and clock, under seeded faults, checked for the
// Raft safety invariants, durability, liveness after healing, and
// linearizable reads and writes.
//
// The seeds are CPU-bound and independent, so the second half runs in a
// child (`npm run sim`) on the other core: the same seeds in half the time.

const root = fileURLToPath(new URL('..', import.meta.url))
const HALF = Math.ceil(TEST_SEEDS / 2)

async function runInChild (first: number, count: number): Promise<{ summary: SeedSummary, stderr: string }> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [...TS_IMPORT, 'sim/cli.ts', '--seed', String(first), '--seeds', String(count), '--json'], { cwd: root, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // Exit code 1 means a seed failed; the summary is still printed.
      const last = stdout.trim().split('\n').at(-1) ?? ''
      try {
        resolve({ summary: JSON.parse(last) as SeedSummary, stderr })
      } catch {
        reject(new Error(`the simulation child printed no summary (${err?.message ?? 'no error'}):\n${stderr}`))
      }
    })
  })
}

function merge (a: SeedSummary, b: SeedSummary): SeedSummary {
  const out = { ...a }
  for (const k of Object.keys(a) as Array<keyof SeedSummary>) {
    if (k === 'failedSeeds') out.failedSeeds = [...a.failedSeeds, ...b.failedSeeds]
    else if (k === 'maxRecoveryMs' || k === 'ms') out[k] = Math.max(a[k], b[k])
    else out[k] = a[k] + b[k]
  }
  return out
}

t.test(`${TEST_SEEDS} simulated fault schedules keep every invariant`, async t => {
  const failures: string[] = []
  const child = runInChild(HALF + 1, TEST_SEEDS - HALF)
  const here = await runSeeds(1, HALF, {}, v => {
    failures.push(`seed ${v.seed}: ${v.violations.join('; ')}\n  replay: ${replayCommand(v.seed)}`)
  })
  const there = await child
  // The child's report names each failing seed, what it violated and its replay command.
  if (there.summary.failedSeeds.length > 0) failures.push(`seeds ${there.summary.failedSeeds.join(', ')}, run in a child:\n${there.stderr}`)
  const summary = merge(here, there.summary)
  t.equal(summary.seeds, TEST_SEEDS)
  t.same(failures, [], 'no seed violated an invariant')
  t.equal(summary.eventCapHits, 0, 'no seed hit its event or wall-time cap')
  t.ok(summary.crashesAtPersistPoints > TEST_SEEDS, 'nodes crashed at persist points')
  t.ok(summary.configChanges > 0, 'membership changed during faults')
  t.ok(summary.configChangesRefused > 0, 'overlapping membership changes were refused')
  t.ok(summary.snapshotsInstalled > 0, 'snapshots were sent to lagging followers')
  t.ok(summary.leaderChanges > TEST_SEEDS, 'leaders changed under faults')
  t.ok(summary.ops > 10000, 'clients completed operations')
})
