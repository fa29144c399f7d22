/**
 * The configuration as of every config entry in the log. Config entries take
 * effect when appended (thesis §4.1), so a truncated suffix must roll the
 * configuration back to the last surviving entry.
 */
import { applyConfChange, decodeConfChange } from './config.js'
import { EntryType, type ConfChange, type ConfigState, type Entry } from '../types.js'

export class ConfigHistory {
  /** Oldest first; [0] is the configuration the snapshot recorded. */
  private history: Array<{ index: number, config: ConfigState }>

  constructor (index: number, config: ConfigState) {
    this.history = [{ index, config }]
  }

  get current (): ConfigState {
    return this.history[this.history.length - 1].config
  }

  /** Folds a newly appended entry in; returns true when the configuration changed. */
  append (e: Entry): boolean {
    if (e.type !== EntryType.Config) return false
    let cc: ConfChange
    try {
      cc = decodeConfChange(e.data)
    } catch {
      // The leader validated what it appended; undecodable bytes are a no-op everywhere alike.
      return false
    }
    this.history.push({ index: e.index, config: applyConfChange(this.current, cc) })
    return true
  }

  /** Drops configurations from entries after `lastIndex` (a truncated suffix). */
  rewind (lastIndex: number): void {
    while (this.history.length > 1 && this.history[this.history.length - 1].index > lastIndex) this.history.pop()
  }

  at (index: number): ConfigState {
    let c = this.history[0].config
    for (const x of this.history) if (x.index <= index) c = x.config
    return c
  }

  /** Index of the newest config entry not yet committed, or 0. */
  pendingIndex (committed: number): number {
    const last = this.history[this.history.length - 1]
    return last.index > committed ? last.index : 0
  }

  /** The log was compacted up to `index`: older history is no longer needed. */
  compact (index: number): void {
    const base = this.at(index)
    this.history = [{ index, config: base }, ...this.history.filter(x => x.index > index)]
  }

  /** The log was replaced by a snapshot. */
  reset (index: number, config: ConfigState): void {
    this.history = [{ index, config }]
  }
}
