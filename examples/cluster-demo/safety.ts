/**
 * Safety checks on what the clinic servers left in their shared database
 * after a run, against what the workload was told:
 * - every HL7 message a node accepted was imported, and exactly once;
 * - the fences the database accepted for one message increase in the order
 *   it serialised the attempts (a retry carries a later claim's fence);
 * - no patient identifier belongs to two patients (the per-patient lock);
 * - each purge tick ran once, with fences increasing from tick to tick.
 */
import type { Hl7Attempt, Patient, TaskRun } from '../clinic-server/database.js'

export interface SafetyReport {
  readonly messages: number
  readonly attempts: number
  readonly retries: number
  readonly stale: number
  readonly merged: number
  readonly purgeRuns: number
  /** One line per violation; empty when the run was safe. */
  readonly violations: string[]
}

export function checkSafety (input: { accepted: ReadonlySet<string>, attempts: readonly Hl7Attempt[], patients: readonly Patient[], purgeRuns: readonly TaskRun[] }): SafetyReport {
  const violations: string[] = []
  const byMessage = new Map<string, Hl7Attempt[]>()
  for (const a of input.attempts) byMessage.set(a.controlId, [...(byMessage.get(a.controlId) ?? []), a])
  for (const id of input.accepted) if (!byMessage.has(id)) violations.push(`HL7 ${id} was accepted but never imported`)
  for (const [id, attempts] of byMessage) {
    const imports = attempts.filter(a => a.outcome === 'imported' || a.outcome === 'merged')
    if (imports.length !== 1) violations.push(`HL7 ${id} was imported ${imports.length} times (fences ${imports.map(a => a.fence).join(', ')})`)
    const fences = attempts.filter(a => a.outcome !== 'stale').map(a => BigInt(a.fence))
    if (fences.some((f, i) => i > 0 && f <= fences[i - 1])) violations.push(`HL7 ${id}: accepted fences do not increase: ${fences.join(', ')}`)
  }
  const owners = new Map<string, number[]>()
  for (const p of input.patients) if (p.identifier !== null) owners.set(p.identifier, [...(owners.get(p.identifier) ?? []), p.id])
  for (const [identifier, ids] of owners) if (ids.length > 1) violations.push(`identifier ${identifier} belongs to ${ids.length} patients (${ids.join(', ')})`)
  const ticks = new Map<number, TaskRun[]>()
  for (const r of input.purgeRuns) ticks.set(r.scheduledAt, [...(ticks.get(r.scheduledAt) ?? []), r])
  for (const [at, runs] of ticks) if (runs.length > 1) violations.push(`purge tick ${new Date(at).toISOString()} ran ${runs.length} times (${runs.map(r => `${r.node} #${r.fence}`).join(', ')})`)
  const runs = [...input.purgeRuns].sort((a, b) => a.scheduledAt - b.scheduledAt)
  runs.forEach((r, i) => {
    if (i > 0 && BigInt(r.fence) <= BigInt(runs[i - 1].fence)) violations.push(`purge fences do not increase: tick ${new Date(r.scheduledAt).toISOString()} has #${r.fence} after #${runs[i - 1].fence}`)
  })
  return {
    messages: byMessage.size,
    attempts: input.attempts.length,
    retries: [...byMessage.values()].reduce((n, a) => n + a.length - 1, 0),
    stale: input.attempts.filter(a => a.outcome === 'stale').length,
    merged: input.attempts.filter(a => a.outcome === 'merged').length,
    purgeRuns: input.purgeRuns.length,
    violations
  }
}
