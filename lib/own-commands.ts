/**
 * The leader's housekeeping: a check run every `checkEveryMs`, and the
 * commands it proposes for itself (expiring sessions and claims, waking
 * queues, ticking tasks), each at most once at a time: a check that finds
 * the same work while its proposal is still in flight does not propose it
 * again. A proposal that fails is simply found again by a later check.
 */
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { Command } from './coordination/commands.js'
import type { Proposer } from './proposer.js'

export class OwnCommands {
  private readonly inFlight = new Set<string>()
  private readonly timer: NodeJS.Timeout

  constructor (private readonly proposer: Proposer, private readonly log: Logger, checkEveryMs: number, check: () => void) {
    this.timer = setInterval(check, checkEveryMs)
    this.timer.unref()
  }

  /** True while the command proposed under `key` is in flight. */
  has (key: string): boolean {
    return this.inFlight.has(key)
  }

  propose (key: string, cmd: Command): void {
    if (this.inFlight.has(key)) return
    this.inFlight.add(key)
    this.proposer.own(cmd).catch((err: unknown) => {
      this.log.debug({ key, op: cmd.op, ...errorFields(err) }, 'leader housekeeping not committed; a later check tries again')
    }).finally(() => { this.inFlight.delete(key) })
  }

  /** A new term: what the previous one had in flight is no concern of this one's checks. */
  clear (): void {
    this.inFlight.clear()
  }

  close (): void {
    clearInterval(this.timer)
  }
}
