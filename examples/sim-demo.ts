/**
 * `npm run sim:demo`: a deterministic simulation of a Raft cluster under
 * faults, narrated as it happens. Every line is produced by the real raft/
 * driver and log store running on a simulated disk, network and clock.
 *
 *   npm run sim:demo -- [--seed S] [--fault-ms T]
 */
import { parseArgs } from 'node:util'
import { Simulator, type SimEvent } from '../sim/simulator.js'

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 100000) },
    'fault-ms': { type: 'string', default: '6000' }
  }
})
const seed = Number(values.seed)
const faultMs = Number(values['fault-ms'])
for (const [name, v] of [['seed', seed], ['fault-ms', faultMs]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a positive integer`)
    process.exit(2)
  }
}

function line (e: SimEvent): string {
  const at = `${(e.at / 1000).toFixed(2).padStart(6)}s`
  switch (e.kind) {
    case 'leader': return `${at}  leader     ${e.node} leads term ${e.term}`
    case 'partition': return `${at}  partition  ${e.groups.map(g => `{${g.join(',')}}`).join(e.oneWay ? ' -x-> ' : ' <-x-> ')}${e.oneWay ? ' (one-way)' : ''}`
    case 'heal': return `${at}  heal       network restored`
    case 'crash': return `${at}  crash      ${e.node}${e.point === null ? '' : ` at ${e.point}`} (unsynced writes lost)`
    case 'restart': return `${at}  restart    ${e.node} recovers from its disk`
    case 'membership': return `${at}  membership config now ${e.change}`
    case 'transfer': return `${at}  transfer   leadership ${e.from} -> ${e.to}`
  }
}

const sim = new Simulator({ seed, faultMs, onEvent: e => { console.log(line(e)) } })
console.log(`raftmesh simulation: seed ${seed}, ${sim.stats.voters} voters, ${sim.nodes.length} nodes, ${faultMs} ms of faults`)
const r = await sim.run()
const s = r.stats
console.log('\nsummary')
console.log(`  simulated time        ${(s.simulatedMs / 1000).toFixed(1)} s (${s.events} events)`)
console.log(`  leader changes        ${s.leaderChanges}`)
console.log(`  crashes               ${s.crashes} (${s.crashesAtPersistPoints} at persist points, ${s.tornWrites} torn writes)`)
console.log(`  partitions            ${s.partitions}`)
console.log(`  messages              ${s.messages} sent, ${s.dropped} dropped, ${s.duplicated} duplicated`)
console.log(`  snapshots installed   ${s.snapshotsInstalled}`)
console.log(`  membership changes    ${s.configChanges} made, ${s.configChangesRefused} refused; leadership transfers ${s.transfers}`)
console.log(`  client operations     ${s.opsOk} acknowledged, ${s.opsUnknown} with unknown outcome`)
console.log(`  recovery after heal   ${Math.round(s.recoveryMs)} ms to commit a new entry`)
console.log(`  safety invariants     ${r.violations.length === 0 ? 'all held' : `VIOLATED: ${r.violations.join('; ')}`}`)
console.log(`\nreplay this run: npm run sim:demo -- --seed ${seed} --fault-ms ${faultMs}`)
console.log('many seeds, with linearizability: npm run sim -- --seeds 1000')
process.exit(r.violations.length === 0 ? 0 : 1)
