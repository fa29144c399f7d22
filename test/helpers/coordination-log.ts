/**
 * A committed coordination log for tests: it stamps commands as the leader
 * would, applies them to a CoordinationState one index at a time, and keeps
 * the story of what the state machine told its observer, one line per event.
 */
import { encodeEnvelope, stampEntry, type Command, type CommandResult, type Envelope, type LockKind } from '../../lib/coordination/commands.js'
import { CoordinationState } from '../../lib/coordination/state.js'
import { EntryType } from '../../raft/index.js'

/** Subscribes to every event of `sm` and writes it to `story` as one line. */
export function tell (sm: CoordinationState, story: string[]): void {
  sm.on('session-opened', s => story.push(`session ${s.id} of ${s.node} opened at ${s.openedIndex}`))
  sm.on('session-ended', e => story.push(`session ${e.session} of ${e.node} ${e.reason}`))
  sm.on('granted', g => story.push(`${g.kind} ${g.name} granted to ${g.session}/${g.owner} fence=${g.fence}`))
  sm.on('released', r => story.push(`${r.kind} ${r.name} released by ${r.session}/${r.owner}`))
  sm.on('restored', () => story.push('restored'))
}

export class CoordinationLog {
  index = 0
  /** The leader's clock: each append stamps 10 ms later unless told otherwise. */
  clock = 1_000_000
  readonly story: string[] = []
  readonly answers: Array<{ client: string, seq: number, result: CommandResult, index: number }> = []

  constructor (readonly sm = new CoordinationState()) {
    tell(sm, this.story)
    sm.on('answer', a => this.answers.push(a))
  }

  /** A fresh instance restored from `log`'s snapshot, going on from its index and clock. */
  static replicaOf (log: CoordinationLog): CoordinationLog {
    const replica = new CoordinationLog()
    replica.sm.restore(log.sm.snapshot())
    replica.index = log.index
    replica.clock = log.clock
    replica.take()
    return replica
  }

  /** Appends one committed Normal entry carrying `env`, stamped by the leader. */
  append (env: Envelope, stamp = this.clock + 10): CommandResult {
    this.clock = stamp
    return this.appendData(stampEntry(stamp, encodeEnvelope(env)))
  }

  appendData (data: Uint8Array, type: EntryType = EntryType.Normal): CommandResult {
    return this.sm.apply({ index: ++this.index, term: 1, type, data })
  }

  /** The leader's own command: the session stopped its keep-alives. */
  expire (session: string): CommandResult {
    return this.append({ c: '', s: 0, lo: 0, cmd: { op: 'expire', session } })
  }

  client (id: string, node: string): Client {
    return new Client(this, id, node)
  }

  /** The story told since the last call. */
  take (): string[] {
    return this.story.splice(0)
  }
}

/** One session's proposer: numbers its commands, and re-sends one exactly as first sent. */
export class Client {
  private seq = 0
  private readonly sent = new Map<number, Envelope>()

  constructor (private readonly log: CoordinationLog, readonly id: string, readonly node: string) {}

  /** The seq the next command will carry. */
  get next (): number {
    return this.seq
  }

  /** Sends `cmd` with the next seq; `lo` defaults to that seq (every earlier command was answered). */
  send (cmd: Command, lo = this.seq): CommandResult {
    const env: Envelope = { c: this.id, s: this.seq++, lo, cmd }
    this.sent.set(env.s, env)
    return this.log.append(env)
  }

  /** The same envelope again, as a retry across a leader change commits it twice. */
  resend (seq: number): CommandResult {
    const env = this.sent.get(seq)
    if (env === undefined) throw new Error(`${this.id} never sent ${seq}`)
    return this.log.append(env)
  }

  open (ttlMs = 10_000): CommandResult {
    return this.send({ op: 'open', node: this.node, ttlMs })
  }

  close (): CommandResult {
    return this.send({ op: 'close' })
  }

  acquire (name: string, { owner = 'o1', wait = true, kind = 'lock' as LockKind } = {}): CommandResult {
    return this.send({ op: 'acquire', kind, name, owner, wait })
  }

  tryAcquire (name: string, { owner = 'o1', kind = 'lock' as LockKind } = {}): CommandResult {
    return this.acquire(name, { owner, kind, wait: false })
  }

  release (name: string, { owner = 'o1', kind = 'lock' as LockKind } = {}): CommandResult {
    return this.send({ op: 'release', kind, name, owner })
  }
}
