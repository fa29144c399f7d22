/**
 * A task's schedule: `{ every }` (slots at multiples of the interval since
 * the epoch, so every leader computes the same times) or `{ cron }` with an
 * optional time zone, parsed by croner. Its canonical JSON is what nodes
 * compare to find tasks whose definitions differ.
 */
import { Cron } from 'croner'
import { InvalidArgumentError } from '../errors.js'

export type Schedule = { readonly every: string | number } | { readonly cron: string, readonly timezone?: string }

export type MissedPolicy = 'skip' | 'run-once'

export interface NormalizedSchedule {
  readonly kind: 'every' | 'cron'
  readonly everyMs?: number
  readonly cron?: string
  readonly timezone?: string
  readonly missed: MissedPolicy
}

const MIN_EVERY_MS = 50
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses '250ms', '30s', '5m', '1h', '1d' or a number of milliseconds. */
export function parseInterval (every: string | number): number {
  let ms: number
  if (typeof every === 'number') {
    ms = every
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(String(every))
    if (m === null) throw new InvalidArgumentError(`every must be a number of ms or like '30s', '5m', '1h'; got ${JSON.stringify(every)}`)
    ms = Number(m[1]) * UNITS[m[2]]
  }
  if (!Number.isFinite(ms) || ms < MIN_EVERY_MS) throw new InvalidArgumentError(`every must be at least ${MIN_EVERY_MS} ms; got ${String(every)}`)
  return Math.round(ms)
}

export function normalizeSchedule (schedule: Schedule, missed: MissedPolicy = 'skip'): NormalizedSchedule {
  if (missed !== 'skip' && missed !== 'run-once') throw new InvalidArgumentError(`missed must be 'skip' or 'run-once'; got ${String(missed)}`)
  if (schedule !== null && typeof schedule === 'object' && 'every' in schedule) return { kind: 'every', everyMs: parseInterval(schedule.every), missed }
  if (schedule !== null && typeof schedule === 'object' && 'cron' in schedule) {
    const timezone = schedule.timezone
    try {
      new Cron(schedule.cron, { paused: true, timezone }).nextRun()
    } catch (err) {
      throw new InvalidArgumentError(`invalid cron schedule: ${(err as Error).message}`)
    }
    return timezone === undefined ? { kind: 'cron', cron: schedule.cron, missed } : { kind: 'cron', cron: schedule.cron, timezone, missed }
  }
  throw new InvalidArgumentError('a schedule is { every } or { cron, timezone? }')
}

/** Canonical text: the same schedule gives the same string on every node. */
export function specText (s: NormalizedSchedule): string {
  return JSON.stringify([s.kind, s.everyMs ?? null, s.cron ?? null, s.timezone ?? null, s.missed])
}

export function parseSpecText (text: string): NormalizedSchedule | null {
  try {
    const [kind, everyMs, cron, timezone, missed] = JSON.parse(text) as [string, number | null, string | null, string | null, MissedPolicy]
    if (kind === 'every' && typeof everyMs === 'number') return normalizeSchedule({ every: everyMs }, missed)
    if (kind === 'cron' && typeof cron === 'string') return normalizeSchedule(timezone === null ? { cron } : { cron, timezone }, missed)
  } catch {
    // Not ours (another version): no times can be computed for it.
  }
  return null
}

/** The first scheduled time strictly after `t` (ms since the epoch). */
export function nextAfter (s: NormalizedSchedule, t: number): number {
  if (s.kind === 'every') {
    const every = s.everyMs as number
    return (Math.floor(t / every) + 1) * every
  }
  const next = new Cron(s.cron as string, { paused: true, timezone: s.timezone }).nextRun(new Date(t))
  return next === null ? Infinity : next.getTime()
}
