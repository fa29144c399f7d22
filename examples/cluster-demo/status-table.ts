/**
 * The live terminal table: one row per clinic server, from its own
 * /cluster/status: role, term, who it thinks leads, commit and applied
 * index, the patient locks it holds now, the HL7 queue as it sees it, the
 * last purge tick (owner and fence), its cache and event traffic (updates
 * and events it sent / took in from others), and panic.
 */
import type { ClusterStatus } from '../../lib/index.js'
import type { ClinicNode } from '../../testkit/clinic-processes.js'

export const QUEUE = 'hl7-in'
export const TASK = 'purge-old-encounters'

const header = `${'node'.padEnd(5)}${'state'.padEnd(9)}${'role'.padEnd(10)}${'term'.padStart(5)} ${'leader'.padEnd(7)}${'commit'.padStart(8)}${'applied'.padStart(8)}  ${'locks'.padStart(5)}  ${'hl7 depth'.padStart(9)}${'flight'.padStart(7)}${'dead'.padStart(5)}  ${'last purge'.padEnd(12)}${'cache out/in'.padStart(13)}${'events out/in'.padStart(14)}  panic`

export function statusTable (nodes: readonly ClinicNode[], statuses: ReadonlyArray<ClusterStatus | null>): string {
  const rows = nodes.map((n, i) => {
    const state = n.proc === null ? 'down' : n.paused ? 'paused' : 'up'
    const s = statuses[i]
    if (s === null) return `${n.id.padEnd(5)}${state.padEnd(9)}${state === 'up' ? 'no answer' : ''}`
    const locks = s.locks.filter(l => l.kind === 'lock' && l.holder?.node === s.id).length
    const q = s.queues.find(x => x.name === QUEUE)
    const last = s.schedules.find(x => x.task === TASK)?.lastRun
    const cache = `${s.caches.reduce((n, c) => n + c.updatesSent, 0)}/${s.caches.reduce((n, c) => n + c.updatesReceived + c.repaired, 0)}`
    const events = `${s.events.published}/${s.events.received}`
    return `${n.id.padEnd(5)}${state.padEnd(9)}${s.raft.role.padEnd(10)}${String(s.raft.term).padStart(5)} ${(s.raft.leader ?? '-').padEnd(7)}${String(s.raft.commitIndex).padStart(8)}${String(s.raft.appliedIndex).padStart(8)}  ${String(locks).padStart(5)}  ${String(q?.depth ?? 0).padStart(9)}${String(q?.inFlight ?? 0).padStart(7)}${String(q?.deadLetters ?? 0).padStart(5)}  ${(last == null ? '-' : `${last.node} #${last.fence}`).padEnd(12)}${cache.padStart(13)}${events.padStart(14)}  ${s.panic === null ? '-' : s.panic.reason}`
  })
  return [header, ...rows].join('\n')
}
