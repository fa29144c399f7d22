/**
 * What testkit/cluster-node.ts (a child process embedding one Cluster) and
 * testkit/cluster-processes.ts (the parent) say to each other over the IPC
 * channel, with structured-clone serialization (fences stay bigints).
 *
 * Every event carries `at`: {@link machineNow} in the process that saw it,
 * so events of different processes on this machine can be ordered on one
 * time line.
 */

/**
 * Milliseconds on a time line shared by every process of this machine: the
 * system's monotonic clock (CLOCK_MONOTONIC, counted from boot), the same
 * for every process. Not `performance.timeOrigin + performance.now()`: the
 * origin is the wall clock read at each process's start, so a wall-clock
 * step (NTP, a VM resumed) between two starts put the later process's
 * events seconds off the others' (a fault-bench batch reported hundreds of
 * false lock and queue violations from it). Only differences mean anything.
 */
export function machineNow (): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** How the child starts its Cluster (argv[2], as JSON; the secret comes in RAFTMESH_SECRET). */
export interface NodeConfig {
  readonly name: string
  readonly nodeId: string
  readonly dataDir: string
  readonly listen: string
  readonly bootstrap: readonly string[]
  readonly expect: number
  readonly sessionTtlMs: number
  readonly panicAfterMs: number
  readonly tickMs?: number
  readonly electionTicks?: number
  /**
   * On quorum-loss panic, 'exit': the library's default handler (stop, exit
   * with PANIC_EXIT_CODE); 'report': stay up and keep serving once a majority
   * answers again. Both report a `panic` event first.
   */
  readonly onPanic: 'exit' | 'report'
  /** A pino level ('debug', 'info' ...) to log to stderr; silent when absent. */
  readonly logLevel?: string
}

/** A loop of acquire → hold → release on one lock. */
export interface LockWorkload {
  readonly lock: string
  /** How long each grant is held, unless its signal fires first. */
  readonly holdMs: number
  /** Stop after this many grants. Default: no limit. */
  readonly count?: number
  /** Stop starting new acquires after this long. Default: no limit. */
  readonly durationMs?: number
  /** Each acquire's timeoutMs; a timeout is reported as an `error` and the loop goes on. Default 10 s. */
  readonly acquireTimeoutMs?: number
  /** Pause between a release and the next acquire. Default 0. */
  readonly gapMs?: number
  /**
   * While holding, the holder checks `valid()` this often and records the
   * last moment it passed (`heldUntil`): what a holder that guards each write
   * with `valid()` could have done under the lock. Default 20 ms.
   */
  readonly stepMs?: number
}

/**
 * acquire → release on one lock, back to back, with no event per grant:
 * the loop a benchmark times. Bounded by `count` and `durationMs`.
 */
export interface CycleLoop {
  readonly lock: string
  readonly count: number
  readonly durationMs: number
  /** Each acquire's timeoutMs; a timeout fails the whole loop. Default 30 s. */
  readonly acquireTimeoutMs?: number
}

/** What a {@link CycleLoop} answers: per grant, when it was requested, granted and released (release applied on this node), on the {@link machineNow} time line. */
export interface CycleTimes {
  readonly requestedAt: number[]
  readonly grantedAt: number[]
  readonly releasedAt: number[]
}

/**
 * Enqueues `count` items with ids `${idPrefix}.1` … on one queue, at most
 * `inFlight` at once. Each id is sent once and never retried: an enqueue whose
 * outcome is unknown is reported (`enqueue-failed`) and the producer moves on,
 * so an item the history shows acked twice was not enqueued twice by us.
 */
export interface ProduceWorkload {
  readonly queue: string
  readonly idPrefix: string
  readonly count: number
  readonly inFlight: number
  /** The queue's maxAttempts (see QueueOptions). */
  readonly maxAttempts: number
  /** Pause after each acknowledged enqueue, per in-flight slot. Default 0. */
  readonly gapMs?: number
  /** Each enqueue's timeoutMs. Default 10 s. */
  readonly timeoutMs?: number
}

/**
 * `queue.process()` on one queue until stopped. Each job "works" for
 * `workMs`, checking `valid()` every `stepMs` (the last passing check is the
 * `heldUntil` of its end event: what a worker that guards each write with
 * `valid()` could have done under the claim), then acks explicitly while still
 * valid, so the history sees the ack's outcome (process() would swallow it).
 */
export interface ProcessWorkload {
  readonly queue: string
  readonly maxAttempts: number
  readonly concurrency: number
  readonly visibilityMs: number
  readonly workMs: number
  /** Default 20 ms. */
  readonly stepMs?: number
}

/** `cluster.schedule()` of one task on this node until stopped; each run it is given works for `workMs` and is reported. */
export interface ScheduleWorkload {
  readonly task: string
  readonly everyMs: number
  readonly workMs: number
}

/**
 * What a cache or event workload writes, so that a value seen anywhere names
 * its write: the writing node, its start (`${node}.${pid}`), and the place of
 * the write in that start's sequence (1, 2, 3 ...).
 */
export interface WriteTag {
  readonly w: string
  readonly s: string
  readonly n: number
}

/**
 * Two caches under one loop (testkit/cache-workload.ts). `replicated`: every
 * step reads one of `keys` shared keys, then writes it (a delete every
 * `deleteEvery` steps) with a {@link WriteTag}. `invalidation`: in front of a
 * "database" of one file per key under `dbDir` holding a version number; each
 * step this node bumps one of its own `ownKeys` keys in the database, then
 * invalidates it (set and delete alternately), while `readers` loops read
 * every node's keys through getOrLoad.
 */
export interface CacheWorkload {
  readonly replicated: string
  readonly invalidation: string
  readonly keys: number
  readonly ownKeys: number
  /** Every node's id: the invalidation keys read are `${id}.${j}` for each. */
  readonly nodes: readonly string[]
  readonly dbDir: string
  readonly gapMs: number
  readonly deleteEvery: number
  readonly readers: number
  /** How long the loader takes after reading the database, so loads overlap invalidations. */
  readonly loadMs: number
  readonly antiEntropyIntervalMs: number
}

/** A replicated cache's entries on one node, sorted by key (see {@link CacheWorkload}). */
export interface CacheContents {
  readonly entries: ReadonlyArray<readonly [string, WriteTag]>
}

/**
 * Publishes `{ tag, ordered }` on `${topic}.${node id}` every `gapMs` (one in
 * `orderedEvery` with `{ ordered: true }`) until the workloads stop, and
 * subscribes to `${topic}.*` for the life of the process, reporting every
 * event received and every gap and overflow the bus reports. One per
 * process: the checker takes a process's receipts as one subscriber's.
 */
export interface EventWorkload {
  readonly topic: string
  readonly gapMs: number
  readonly orderedEvery: number
}

/** A queue as one node's applied state shows it: what the checker needs at the end. */
export interface QueueState {
  readonly stats: { readonly depth: number, readonly inFlight: number, readonly deadLetters: number, readonly acked: number }
  readonly deadLetters: ReadonlyArray<{ readonly id: string, readonly attempts: number, readonly lastError: string | null }>
  readonly appliedIndex: number
}

/** Something the child saw, reported as it happened; see {@link NodeEvent}. */
export type NodeEventBody =
  | {
    readonly type: 'granted'
    readonly workload: string
    readonly lock: string
    readonly fence: bigint
    /** Unique per grant across processes and restarts. */
    readonly owner: string
    /** When this acquire was called. */
    readonly requestedAt: number
    /** `valid()` right after acquire resolved: false means the grant was never usable. */
    readonly valid: boolean
  }
  /** The holder stopped using the lock (its last `valid()` check passed at `at`) and called release(). */
  | { readonly type: 'released', readonly workload: string, readonly lock: string, readonly fence: bigint, readonly owner: string }
  | {
    readonly type: 'lost'
    readonly workload: string
    readonly lock: string
    readonly fence: bigint
    readonly owner: string
    /** The handle's signal reason, or why `valid()` turned false. */
    readonly reason: string
    /** `at` is when the signal fired or `valid()` first returned false; the holder's last passing check was at `heldUntil` (null: never). */
    readonly heldUntil: number | null
  }
  | { readonly type: 'workload-done', readonly workload: string, readonly grants: number }
  /** About to call enqueue for `id` (sent once, never retried). */
  | { readonly type: 'enqueue-sent', readonly workload: string, readonly queue: string, readonly id: string }
  /** The enqueue resolved: committed, and the queue owes this item an ack or a dead letter. */
  | { readonly type: 'enqueued', readonly workload: string, readonly queue: string, readonly id: string, readonly duplicate: boolean }
  /** The enqueue rejected: its outcome is unknown (it may still be committed). */
  | { readonly type: 'enqueue-failed', readonly workload: string, readonly queue: string, readonly id: string, readonly name: string, readonly message: string }
  | {
    readonly type: 'job-started'
    readonly workload: string
    readonly queue: string
    readonly id: string
    readonly fence: bigint
    readonly attempt: number
    /** Unique per start across processes and restarts. */
    readonly owner: string
    readonly visibilityMs: number
    /** `valid()` as the handler began: false means the claim was never usable. */
    readonly valid: boolean
  }
  /** The handler finished its work (last passing `valid()` at `heldUntil`) and calls ack(); `at` is when it was called. */
  | { readonly type: 'job-ack-sent', readonly workload: string, readonly queue: string, readonly id: string, readonly fence: bigint, readonly owner: string, readonly heldUntil: number }
  /** ack() resolved. */
  | { readonly type: 'job-acked', readonly workload: string, readonly queue: string, readonly id: string, readonly fence: bigint, readonly owner: string }
  /** ack() rejected; `firedAt`: when the job's signal fired, if it did before the rejection. */
  | { readonly type: 'job-ack-failed', readonly workload: string, readonly queue: string, readonly id: string, readonly fence: bigint, readonly owner: string, readonly name: string, readonly message: string, readonly heldUntil: number, readonly firedAt: number | null }
  | {
    readonly type: 'job-lost'
    readonly workload: string
    readonly queue: string
    readonly id: string
    readonly fence: bigint
    readonly owner: string
    /** The signal's reason, or why `valid()` turned false. */
    readonly reason: string
    /** The last passing `valid()` (null: never). */
    readonly heldUntil: number | null
    /** When the signal fired (null: `valid()` turned false first; `at` is when that was seen). */
    readonly firedAt: number | null
  }
  /** A run of a scheduled task: `heldUntil` is its last passing `valid()`, checked every 10 ms while it works. */
  | { readonly type: 'task-run', readonly workload: string, readonly task: string, readonly fence: bigint, readonly scheduledAt: number, readonly startedAt: number, readonly heldUntil: number, readonly endedAt: number, readonly outcome: 'ok' | 'aborted' }
  /** About to write (set or delete) a key of a replicated cache: the write is applied here as the call is made. */
  | { readonly type: 'cache-write', readonly workload: string, readonly cache: string, readonly key: string, readonly op: 'set' | 'delete', readonly tag: WriteTag }
  /** `get` on a replicated cache; null: no value. */
  | { readonly type: 'cache-read', readonly workload: string, readonly cache: string, readonly key: string, readonly value: WriteTag | null }
  /** A remote change of a cache (replicated: the value now held, null for a delete; invalidation: always a delete). */
  | { readonly type: 'cache-change', readonly workload: string, readonly cache: string, readonly key: string, readonly op: 'set' | 'delete', readonly value: WriteTag | null }
  /** The database holds `version` for `key` (written by this node alone); the invalidation is sent next. */
  | { readonly type: 'inv-write', readonly workload: string, readonly cache: string, readonly key: string, readonly version: number }
  /** getOrLoad of an invalidation cache called at `startedAt` resolved with `version`. */
  | { readonly type: 'inv-read', readonly workload: string, readonly cache: string, readonly key: string, readonly version: number, readonly startedAt: number }
  /** publish() resolved with `seq` (for an ordered event: its log index). */
  | { readonly type: 'event-published', readonly workload: string, readonly topic: string, readonly tag: WriteTag, readonly seq: number, readonly ordered: boolean }
  /** The subscription's handler was called. */
  | { readonly type: 'event-received', readonly workload: string, readonly topic: string, readonly publisher: string, readonly seq: number, readonly tag: WriteTag, readonly ordered: boolean }
  /** The bus reported events `from`..`to` of `publisher` lost. */
  | { readonly type: 'event-gap', readonly workload: string, readonly publisher: string, readonly from: number, readonly to: number }
  /** The bus dropped an event for the subscription (its queue was full). */
  | { readonly type: 'event-overflow', readonly workload: string, readonly publisher: string, readonly seq: number }
  | { readonly type: 'panic', readonly reason: string, readonly sinceMs: number }
  | { readonly type: 'leader', readonly leader: string | null, readonly term: number }
  | { readonly type: 'member-up', readonly id: string }
  | { readonly type: 'member-down', readonly id: string, readonly reason: string }
  /** Cluster.start was called, and resolved (joined and caught up). */
  | { readonly type: 'cluster-starting' }
  | { readonly type: 'cluster-joined' }
  /** gossipsub here saw peer `peerId` subscribe to a topic (the peer's gossip is live again after a restart). */
  | { readonly type: 'gossip-subscribed', readonly peerId: string }
  | { readonly type: 'error', readonly op: string, readonly name: string, readonly message: string }

/** An event with the time the child saw it (see {@link machineNow}). */
export type NodeEvent = NodeEventBody & { readonly at: number }

/** Parent → child; every request is answered by a {@link Reply} with the same id. */
export type Request = RequestBody & { readonly id: number }

export type RequestBody =
  | { readonly op: 'workload', readonly workload: LockWorkload }
  | { readonly op: 'stop-workloads' }
  | { readonly op: 'cycle', readonly loop: CycleLoop }
  | { readonly op: 'produce', readonly workload: ProduceWorkload }
  | { readonly op: 'process', readonly workload: ProcessWorkload }
  | { readonly op: 'queue-state', readonly queue: string }
  | { readonly op: 'schedule', readonly workload: ScheduleWorkload }
  | { readonly op: 'cache', readonly workload: CacheWorkload }
  | { readonly op: 'cache-contents', readonly cache: string }
  | { readonly op: 'events', readonly workload: EventWorkload }
  /**
   * The transport's fault layer: refuse these peers at the connection gater
   * and hang up on them, as a network split would look from this node.
   */
  | { readonly op: 'partition', readonly deny: readonly string[] }
  /** Lifts every partition of this node and redials at once. */
  | { readonly op: 'heal' }
  /**
   * Every job this node's workers hold acts once now, if `valid()` passes (its
   * `heldUntil` moves to now); answers how many did. A request sent while the
   * child is SIGSTOPped is read after SIGCONT before any overdue timer runs:
   * a reply from a database that arrived during the pause, acted on at once.
   */
  | { readonly op: 'touch-jobs' }
  | { readonly op: 'status' }
  | { readonly op: 'stop' }

export type Reply = { readonly kind: 'reply', readonly id: number } & (
  | { readonly ok: true, readonly value: unknown }
  | { readonly ok: false, readonly error: string }
)

/** Child → parent. */
export type ChildMessage = { readonly kind: 'event', readonly event: NodeEvent } | Reply
