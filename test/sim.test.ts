import t from 'tap'
import { runSeeds } from './sim/run-seeds.js'

// The proof of the core: 300 seeded fault schedules, each checked for the
// Raft safety invariants, liveness after healing, and linearizable reads and writes.
t.test('300 simulated fault schedules keep every invariant', async t => {
  const failures: string[] = []
  const summary = runSeeds(1, 300, undefined, v => {
    failures.push(`seed ${v.seed}: ${v.violations.join('; ')}\n  replay: npm run sim -- --seed ${v.seed}`)
  })
  t.equal(summary.seeds, 300)
  t.same(failures, [], 'no seed violated an invariant')
  t.ok(summary.leaderChanges > 300, 'leaders changed under faults')
  t.ok(summary.snapshotsInstalled > 0, 'snapshots were sent to lagging followers')
  t.ok(summary.membershipChanges > 0, 'membership changed during faults')
  t.ok(summary.ops > 10000, 'clients completed operations')
})
