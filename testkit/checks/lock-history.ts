/**
 * Checks a recorded multi-process lock history (testkit/cluster-processes.ts)
 * against what the lock promises, for one lock name:
 *
 * - fences: grants in time order carry strictly increasing fences;
 * - mutual exclusion: no two holders' intervals overlap;
 * - liveness after a crash: the lock of a SIGKILLed holder is granted again
 *   within sessionTtlMs plus a bound;
 * - progress: at least some number of usable grants.
 *
 * A holder's interval runs from its grant to the moment it stopped being
 * the holder: its release, or the moment its signal fired, or its SIGKILL
 * (or exit) if it never said. A process that was SIGSTOPped while holding
 * is the exception: its timers only run after SIGCONT, so its signal fires
 * after the lock has rightly gone elsewhere; what must hold then is that it
 * did nothing as the holder after the lease lapsed, so its interval ends at
 * its last passing `valid()` check (`heldUntil`). A `valid()` that wrongly
 * passes after SIGCONT moves that end past the next grant and is reported.
 */
import type { HistoryEntry } from '../cluster-processes.js'
import { Pauses } from './pauses.js'

export interface LockHistoryBounds {
  readonly lock: string
  readonly sessionTtlMs: number
  /** On top of sessionTtlMs: how much later than a holder's SIGKILL the lock may be granted again (election, expiry check, commit, a loaded machine). */
  readonly regrantSlackMs: number
  /** The workload made progress: at least this many usable grants. */
  readonly minGrants: number
}

/** One grant and how long its holder could act on it. */
export interface Holding {
  readonly node: number
  readonly owner: string
  readonly fence: bigint
  readonly start: number
  /** -Infinity: never usable (valid() was false at once); Infinity: still held when the history ends. */
  end: number
  ended: 'released' | 'lost' | 'killed' | 'exited' | 'open'
}

type Granted = Extract<HistoryEntry, { type: 'granted' }>

/** Every violation found, each a sentence naming the holders and times; empty when the history is correct. */
export function checkLockHistory (history: readonly HistoryEntry[], b: LockHistoryBounds): string[] {
  const entries = [...history].sort((x, y) => x.at - y.at)
  const t0 = entries[0]?.at ?? 0
  const ms = (at: number): string => Number.isFinite(at) ? `${Math.round(at - t0)} ms` : String(at)
  const grants = entries.filter((e): e is Granted => e.type === 'granted' && e.lock === b.lock)
  const holdings = intervals(entries, b.lock)
  const violations: string[] = []

  for (let i = 1; i < grants.length; i++) {
    const [prev, g] = [grants[i - 1], grants[i]]
    if (g.fence <= prev.fence) violations.push(`fence ${g.fence} granted to ${g.owner} at ${ms(g.at)} is not above fence ${prev.fence} granted to ${prev.owner} at ${ms(prev.at)}`)
  }

  const usable = holdings.filter(h => h.end > h.start).sort((x, y) => x.start - y.start)
  let longest: Holding | undefined
  for (const h of usable) {
    if (longest !== undefined && h.start < longest.end) {
      violations.push(`${h.owner} (fence ${h.fence}) was granted at ${ms(h.start)} while ${longest.owner} (fence ${longest.fence}) held the lock from ${ms(longest.start)} to ${ms(longest.end)} (${longest.ended})`)
    }
    if (longest === undefined || h.end > longest.end) longest = h
  }

  for (const k of entries) {
    if (k.type !== 'killed' || k.signal !== 'SIGKILL') continue
    const held = holdings.find(h => h.node === k.node && h.ended === 'killed' && h.end === k.at && h.start < k.at)
    if (held === undefined) continue
    const bound = b.sessionTtlMs + b.regrantSlackMs
    const next = grants.find(g => g.at > k.at && g.valid)
    if (next === undefined) violations.push(`the lock of ${held.owner} (fence ${held.fence}), SIGKILLed at ${ms(k.at)}, was never granted again`)
    else if (next.at - k.at > bound) violations.push(`the lock of ${held.owner} (fence ${held.fence}), SIGKILLed at ${ms(k.at)}, was granted again only ${Math.round(next.at - k.at)} ms later (bound ${bound} ms)`)
  }

  if (usable.length < b.minGrants) violations.push(`only ${usable.length} usable grants of ${b.lock}, expected at least ${b.minGrants}`)
  return violations
}

/** Each grant of `lock` with the end of its holder's interval (see the file comment); `entries` sorted by time. */
function intervals (entries: readonly HistoryEntry[], lock: string): Holding[] {
  const holdings: Holding[] = []
  const open = new Map<string, Holding>()
  const pauses = new Pauses()
  for (const e of entries) {
    pauses.see(e)
    switch (e.type) {
      case 'granted': {
        if (e.lock !== lock) break
        const h: Holding = { node: e.node, owner: e.owner, fence: e.fence, start: e.at, end: e.valid ? Infinity : -Infinity, ended: 'open' }
        holdings.push(h)
        if (e.valid) open.set(e.owner, h)
        else h.ended = 'lost'
        break
      }
      case 'released':
      case 'lost': {
        const h = open.get(e.owner)
        if (h === undefined) break
        open.delete(e.owner)
        h.ended = e.type
        h.end = e.type === 'lost' && pauses.during(e.node, h.start, e.at) ? e.heldUntil ?? -Infinity : e.at
        break
      }
      case 'killed':
      case 'exited':
        if (e.type === 'killed' && e.signal !== 'SIGKILL') break
        for (const [owner, h] of open) {
          if (h.node !== e.node) continue
          open.delete(owner)
          h.ended = e.type
          h.end = e.at
        }
        break
    }
  }
  return holdings
}
