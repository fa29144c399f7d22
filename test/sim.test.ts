import t from 'tap'
import { replayCommand, runSeeds, TEST_SEEDS } from '../sim/run-seeds.js'

// The proof of the Raft code that ships: the real driver and log store on a
// simulated disk, network and clock, under seeded faults, checked for the
// Raft safety invariants, durability, liveness after healing, and
// linearizable reads and writes.
t.test(`${TEST_SEEDS} simulated fault schedules keep every invariant`, async t => {
  const failures: string[] = []
  const summary = await runSeeds(1, TEST_SEEDS, {}, v => {
    failures.push(`seed ${v.seed}: ${v.violations.join('; ')}\n  replay: ${replayCommand(v.seed)}`)
  })
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
