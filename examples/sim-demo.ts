/**
 * `npm start` (until the libp2p mesh lands): a deterministic simulation of a
 * Raft cluster under faults, narrated as it happens. Every line is produced
 * by the real raft/ core running on a simulated network and clock.
 *
 *   npm start -- [--seed S] [--nodes N] [--ticks T]
 */
import { parseArgs } from 'node:util'
import { Simulator, type SimEvent } from '../raft/sim/simulator.js'

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 100000) },
    nodes: { type: 'string', default: '5' },
    ticks: { type: 'string', default: '600' }
  }
})
const seed = Number(values.seed)
const nodes = Number(values.nodes)
const ticks = Number(values.ticks)
for (const [name, v] of [['seed', seed], ['nodes', nodes], ['ticks', ticks]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a positive integer`)
    process.exit(2)
  }
}

function line (e: SimEvent): string | null {
  const at = `${(e.at / 1000).toFixed(2).padStart(6)}s`
  switch (e.kind) {
    case 'leader': return `${at}  leader     ${e.node} leads term ${e.term}`
    case 'partition': return `${at}  partition  ${e.groups.map(g => `{${g.join(',')}}`).join(e.oneWay ? ' -x-> ' : ' <-x-> ')}${e.oneWay ? ' (one-way)' : ''}`
    case 'heal': return `${at}  heal       network restored`
    case 'crash': return `${at}  crash      ${e.node} (unsynced writes lost)`
    case 'restart': return `${at}  restart    ${e.node} recovers from its disk`
    case 'membership': return `${at}  membership proposed; config now ${e.change}`
    case 'transfer': return `${at}  transfer   leadership ${e.from} -> ${e.to}`
    case 'progress': return `${at}  progress   commit index ${e.committed}, ${e.ops} client ops acknowledged`
  }
}

console.log(`raftmesh simulation: ${nodes} voters + 2 spare nodes, seed ${seed}, ${ticks} ticks of faults (10 ms per tick)`)
const sim = new Simulator({ seed, nodes, faultTicks: ticks, onEvent: e => { const l = line(e); if (l !== null) console.log(l) } })
const r = sim.run()
const s = r.stats
console.log('\nsummary')
console.log(`  simulated time        ${(s.ticks / 100).toFixed(1)} s (${s.events} events)`)
console.log(`  leader changes        ${s.leaderChanges}`)
console.log(`  crashes / partitions  ${s.crashes} / ${s.partitions}`)
console.log(`  messages              ${s.messages} sent, ${s.dropped} dropped, ${s.duplicated} duplicated`)
console.log(`  snapshots installed   ${s.snapshotsInstalled}`)
console.log(`  membership changes    ${s.membershipChanges}, leadership transfers ${s.transfers}`)
console.log(`  committed entries     ${s.committed}`)
console.log(`  client operations     ${s.opsOk} acknowledged, ${s.opsUnknown} with unknown outcome`)
console.log(`  recovery after heal   ${s.recoveryTicks} ticks to commit a new entry`)
console.log(`  safety invariants     ${r.violations.length === 0 ? 'all held' : `VIOLATED: ${r.violations.join('; ')}`}`)
console.log(`\nreplay this run: npm start -- --seed ${seed} --nodes ${nodes} --ticks ${ticks}`)
console.log('check linearizability over many seeds: npm run sim -- --seeds 1000')
process.exit(r.violations.length === 0 ? 0 : 1)
