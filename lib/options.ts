/**
 * Cluster.start's options, validated with zod so a mistake is reported by
 * name before anything starts.
 */
import { z } from 'zod'
import type { Logger } from '../gossip/logger.js'
import { InvalidArgumentError } from './errors.js'

const nodeIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/

const secret = z.union([z.string(), z.instanceof(Uint8Array)]).refine(
  s => (typeof s === 'string' ? Buffer.byteLength(s) : s.byteLength) >= 32,
  'must be at least 32 bytes (the same on every node): it keys the private network'
)

const schema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1-128 letters, digits, "_", "." or "-"'),
  secret: secret.optional(),
  insecure: z.boolean().default(false),
  dataDir: z.string().min(1),
  nodeId: z.string().regex(nodeIdPattern, 'must be 1-64 letters, digits, "_", ".", ":" or "-"').optional(),
  listen: z.array(z.string().min(1)).min(1).default(['/ip4/127.0.0.1/tcp/0']),
  bootstrap: z.array(z.string().min(1)).default([]),
  mdns: z.boolean().default(false),
  expect: z.number().int().min(1).max(7).optional(),
  voters: z.array(z.string().regex(nodeIdPattern)).min(1).max(7).optional(),
  appVersion: z.string().min(1).max(64).default('0.0.0'),
  meta: z.record(z.string(), z.string()).default({}),
  sessionTtlMs: z.number().int().min(200).max(3_600_000).default(10_000),
  panicAfterMs: z.number().int().min(100).default(5_000),
  maxVoters: z.number().int().min(1).max(7).refine(n => n % 2 === 1, 'must be odd').default(5),
  deadVoterAfterMs: z.number().int().min(1000).default(60_000),
  tickMs: z.number().int().min(5).max(1000).default(50),
  electionTicks: z.number().int().min(3).max(100).default(6),
  heartbeatTicks: z.number().int().min(1).max(50).default(2),
  // Ticks without a write before the Raft leader stops heartbeats (0: never);
  // the mesh's keep-alive then tells followers if it dies (see raft/core/quiescence.ts).
  quiesceAfterTicks: z.number().int().min(0).max(10_000).default(10),
  snapshotEvery: z.number().int().min(10).default(10_000),
  joinTimeoutMs: z.number().int().positive().optional()
}).superRefine((o, ctx) => {
  if (o.panicAfterMs >= o.sessionTtlMs) {
    ctx.addIssue({ code: 'custom', path: ['panicAfterMs'], message: `must be less than sessionTtlMs (${o.sessionTtlMs}): a cut-off node must panic before its session can expire and its locks be granted elsewhere` })
  }
  if ((o.expect === undefined) === (o.voters === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['expect'], message: 'give exactly one of `expect` (form the first voter set from the first N nodes seen) or `voters` (a static list of node ids)' })
  }
  if (o.secret === undefined && !o.insecure) {
    ctx.addIssue({ code: 'custom', path: ['secret'], message: 'is required (the same on every node); pass `insecure: true` only for local development' })
  }
  if (o.heartbeatTicks >= o.electionTicks) ctx.addIssue({ code: 'custom', path: ['heartbeatTicks'], message: 'must be less than electionTicks' })
})

export type ClusterOptionsInput = z.input<typeof schema>

/** Options of {@link Cluster.start}; see the README for each. */
export interface ClusterOptions extends Omit<ClusterOptionsInput, 'secret'> {
  /** At least 32 bytes, the same on every node: keys the private network. */
  readonly secret?: string | Uint8Array
  /** A pino-compatible logger; silent by default. */
  readonly logger?: Logger
  /** Aborts a start that has not joined yet. */
  readonly signal?: AbortSignal
  /**
   * Called on quorum-loss panic, after lock handles have aborted. Default:
   * stop the node and exit the process with {@link PANIC_EXIT_CODE}.
   */
  readonly onPanic?: (info: PanicInfo) => void
}

export interface PanicInfo {
  readonly reason: string
  /** How long no majority had confirmed this node. */
  readonly sinceMs: number
}

export type ResolvedOptions = z.output<typeof schema> & Pick<ClusterOptions, 'logger' | 'signal' | 'onPanic'>

/** Exit code of a process stopped by the default panic handler (EX_TEMPFAIL). */
export const PANIC_EXIT_CODE = 75

export function parseOptions (input: ClusterOptions): ResolvedOptions {
  if (typeof input !== 'object' || input === null) throw new InvalidArgumentError('Cluster.start needs an options object')
  const { logger, signal, onPanic, ...rest } = input
  const parsed = schema.safeParse(rest)
  if (!parsed.success) {
    throw new InvalidArgumentError(`invalid cluster options: ${parsed.error.issues.map(i => `${i.path.join('.') || '(options)'} ${i.message}`).join('; ')}`)
  }
  if (onPanic !== undefined && typeof onPanic !== 'function') throw new InvalidArgumentError('onPanic must be a function')
  return { ...parsed.data, logger, signal, onPanic }
}
