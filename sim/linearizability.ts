/**
 * Linearizability checker for a key-value store whose keys are independent
 * registers (Wing & Gong's search with Lowe's improvements, as popularised by
 * Porcupine).
 *
 * The history of each key is turned into a doubly-linked list of call and
 * return events sorted by time. A depth-first search walks the list: at a call
 * it tries to linearize that operation next (apply it to the model state and
 * check the recorded output); at the first return it has run out of
 * candidates, since that operation must have taken effect before it returned,
 * so it backtracks. Linearized operations are unlinked from the list
 * ("lifted") and relinked on backtrack ("unlifted"), so the list only ever
 * holds pending operations. A cache of visited (linearized set, state)
 * configurations prunes the search: two paths that linearized the same
 * operations and reached the same value have identical futures.
 *
 * Operations with an unknown outcome have no return event: they sit in a
 * list of their own and are tried after the known candidates, and the search
 * succeeds once every known operation is linearized. Because they may also
 * never happen, they multiply the configurations; two reductions keep that in
 * check: a configuration is skipped when one already visited had the same
 * known operations and state but used fewer unknown ones, and identical
 * unknown operations are only ever used in call order.
 *
 * Linearizability is compositional (Herlihy & Wing), so each key is checked on
 * its own, which keeps the exponential search small.
 *
 * Callers must leave out operations that definitely did not take effect (for
 * example a request rejected before it reached the leader): this checker
 * assumes every operation in the history may have happened, and every
 * operation with a known outcome did happen.
 */

/** One client operation on the KV store. A cas with `expect: null` swaps only if the key is absent. */
export type KvInput =
  | { op: 'get', key: string }
  | { op: 'put', key: string, value: string }
  | { op: 'cas', key: string, expect: string | null, value: string }
  | { op: 'delete', key: string }

/**
 * The observed result of an operation. `get` reports `value` (`null` or
 * omitted = absent); a `cas` reports `ok: true` when it swapped and
 * `ok: false` with the value it found otherwise. `put` and `delete` only ever
 * succeed; a failed one did not happen and belongs outside the history.
 */
export type KvOutput =
  | { ok: true, value?: string | null }
  | { ok: false, value?: string | null }

/** One operation as seen by a client: its input, its time window and its result. */
export interface Operation {
  clientId: number
  input: KvInput
  /** Time of invocation (any monotone clock: ticks or ns). */
  call: number
  /**
   * Time of the response; Infinity when the outcome is unknown (timeout /
   * crash): the operation may or may not have taken effect, at any point after
   * call. Ignored when `output` is undefined.
   */
  return: number
  /** Undefined when the outcome is unknown. */
  output?: KvOutput
}

/** Verdict of {@link checkKvHistory}. */
export interface CheckResult {
  /** True only when every key's sub-history was proven linearizable. */
  ok: boolean
  /** When not ok: the key whose sub-history failed (or whose search ran out of budget). */
  key?: string
  /** When not ok: the longest linearizable prefix found and the operation that could not be placed after it. */
  explanation?: string
  /** True if the search hit the step budget; `ok` is then false but linearizability is undecided. */
  timedOut?: boolean
}

/** Options of {@link checkKvHistory}. */
export interface CheckOptions {
  /** Search steps allowed over the whole history, shared by all keys (default 5e6). */
  maxSteps?: number
}

const DEFAULT_MAX_STEPS = 5_000_000
/** How many operations of the linearizable prefix an explanation quotes. */
const PREFIX_TAIL = 5

/**
 * Checks that a history of KV operations is linearizable, key by key.
 *
 * An operation with a known outcome must take effect exactly once between its
 * call and its return, and its output must match the model. An operation with
 * an unknown outcome (`output` undefined) may take effect at any time after its
 * call, with any result, or never.
 *
 * Time ties are resolved permissively: a call and a return at the same instant
 * are treated as concurrent.
 *
 * @throws {RangeError} on malformed times, {@link TypeError} on an output that
 * no operation of that kind can produce.
 */
export function checkKvHistory (history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const byKey = new Map<string, Operation[]>()
  for (const op of history) {
    validate(op)
    // An unknown get changes nothing and reports nothing, so it can always be
    // linearized anywhere; dropping it only shrinks the search.
    if (op.output === undefined && op.input.op === 'get') continue
    const ops = byKey.get(op.input.key)
    if (ops === undefined) byKey.set(op.input.key, [op])
    else ops.push(op)
  }
  const budget = { remaining: opts.maxSteps ?? DEFAULT_MAX_STEPS }
  for (const [key, ops] of byKey) {
    const verdict = checkRegister(ops, budget)
    if (verdict === null) continue
    if (verdict === 'timeout') {
      return {
        ok: false,
        key,
        timedOut: true,
        explanation: `search budget of ${opts.maxSteps ?? DEFAULT_MAX_STEPS} steps exhausted while checking key ${JSON.stringify(key)}; linearizability undecided`
      }
    }
    return { ok: false, key, explanation: verdict }
  }
  return { ok: true }
}

function validate (op: Operation): void {
  if (!Number.isFinite(op.call)) throw new RangeError(`operation call time must be finite: ${describe(op)}`)
  if (op.output !== undefined && !(op.return >= op.call)) throw new RangeError(`operation return time must be >= its call time: ${describe(op)}`)
  if (op.output !== undefined && !op.output.ok && op.input.op !== 'cas') {
    throw new TypeError(`only cas can report ok: false; an operation that did not happen must be left out of the history: ${describe(op)}`)
  }
}

/** Register state: the key's value, null when absent. */
type State = string | null

/**
 * Applies one operation to the register. Returns the next state, or undefined
 * when the recorded output is impossible from `state`. An unknown output
 * matches anything.
 */
function apply (state: State, input: KvInput, output: KvOutput | undefined): State | undefined {
  switch (input.op) {
    case 'get':
      return output === undefined || (output.ok && (output.value ?? null) === state) ? state : undefined
    case 'put':
      return input.value
    case 'delete':
      return null
    case 'cas':
      if (state === input.expect) return output === undefined || output.ok ? input.value : undefined
      return output === undefined || (!output.ok && (output.value ?? null) === state) ? state : undefined
  }
}

/**
 * Set of linearized operations. Its hash covers only the known-outcome ops,
 * so configurations that differ only in which unknown ops were used share a
 * cache bucket, where {@link VisitedCache} compares them by inclusion.
 */
class OpSet {
  readonly words: Uint32Array
  hash = 0
  private readonly salts: Int32Array

  constructor (unknown: readonly boolean[]) {
    this.words = new Uint32Array(Math.ceil(unknown.length / 32))
    // Zobrist hashing: XOR of a fixed random-looking salt per member, so
    // adding or removing an op updates the hash in O(1).
    this.salts = Int32Array.from(unknown, (u, i) => u ? 0 : mix32(i))
  }

  has (i: number): boolean {
    return (this.words[i >>> 5] & (1 << (i & 31))) !== 0
  }

  /** Adds or removes op `i` (the same call does both: XOR). */
  toggle (i: number): void {
    this.words[i >>> 5] ^= 1 << (i & 31)
    this.hash ^= this.salts[i]
  }
}

/** A murmur3-style finalizer: spreads consecutive integers over 32 bits. */
function mix32 (x: number): number {
  let h = Math.imul(x ^ 0x9e3779b9, 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/**
 * Configurations already visited. A configuration is not worth visiting if a
 * visited one had the same state, the same known ops linearized and a subset
 * of its unknown ops used: that one has every continuation this one has. (If
 * it is still being explored, it is an ancestor that will try them itself.)
 */
class VisitedCache {
  private readonly buckets = new Map<number, Map<State, Uint32Array[]>>()
  private readonly knownMask: Uint32Array

  constructor (unknown: readonly boolean[]) {
    this.knownMask = new Uint32Array(Math.ceil(unknown.length / 32))
    unknown.forEach((u, i) => { if (!u) this.knownMask[i >>> 5] |= 1 << (i & 31) })
  }

  /** Records the configuration; false if a visited one covers it. */
  visit (set: OpSet, state: State): boolean {
    let byState = this.buckets.get(set.hash)
    if (byState === undefined) this.buckets.set(set.hash, byState = new Map())
    const seen = byState.get(state) ?? []
    if (seen.some(words => this.covers(words, set.words))) return false
    // Keep only the minimal sets: whatever a dropped one covered, this one covers.
    const kept = seen.filter(words => !this.covers(set.words, words))
    kept.push(set.words.slice())
    byState.set(state, kept)
    return true
  }

  /** Same known ops, and `a`'s unknown ops ⊆ `b`'s. */
  private covers (a: Uint32Array, b: Uint32Array): boolean {
    for (let w = 0; w < a.length; w++) {
      if (((a[w] & ~b[w]) | (b[w] & ~a[w] & this.knownMask[w])) !== 0) return false
    }
    return true
  }
}

/**
 * Searches for a linearization of one key's operations. Returns null when one
 * exists, 'timeout' when the budget ran out, or an explanation otherwise.
 */
function checkRegister (ops: readonly Operation[], budget: { remaining: number }): string | 'timeout' | null {
  const n = ops.length
  const unknown = ops.map(op => op.output === undefined)
  // Event nodes: op i has call node 2i+1 and, if its outcome is known, return
  // node 2i+2, so parity tells the kind and the matching return is call + 1.
  // Known ops live in the main list (head 0), in time order; unknown ops have
  // no return to respect and live in a list of their own calls.
  const MAIN = 0
  const UNKNOWN = 2 * n + 1
  const opOf = (node: number): number => (node - 1) >>> 1
  const isCall = (node: number): boolean => (node & 1) === 1
  const time = (node: number): number => isCall(node) ? ops[opOf(node)].call : ops[opOf(node)].return

  const events: number[] = []
  for (let i = 0; i < n; i++) {
    events.push(2 * i + 1)
    if (!unknown[i]) events.push(2 * i + 2)
  }
  // Calls first on ties: a return and a call at the same instant count as concurrent.
  events.sort((a, b) => time(a) - time(b) || Number(!isCall(a)) - Number(!isCall(b)))
  const rank = new Int32Array(2 * n + 2)
  const next = new Int32Array(2 * n + 2).fill(-1)
  const prev = new Int32Array(2 * n + 2).fill(-1)
  const tails = [MAIN, UNKNOWN]
  events.forEach((node, r) => {
    rank[node] = r
    const list = unknown[opOf(node)] ? 1 : 0
    next[tails[list]] = node
    prev[node] = tails[list]
    tails[list] = node
  })

  // Identical unknown ops are interchangeable, so only the earliest unused one
  // of each kind is tried: the others would just repeat the same search.
  const twin = new Int32Array(n).fill(-1)
  const lastOfKind = new Map<string, number>()
  for (let node = next[UNKNOWN]; node !== -1; node = next[node]) {
    const kind = JSON.stringify(ops[opOf(node)].input)
    twin[opOf(node)] = lastOfKind.get(kind) ?? -1
    lastOfKind.set(kind, opOf(node))
  }

  // Lowe's lift: unlink an op's events while it is linearized; unlift relinks
  // them in reverse order (dancing links), restoring the list exactly.
  const unlink = (node: number): void => {
    next[prev[node]] = next[node]
    if (next[node] !== -1) prev[next[node]] = prev[node]
  }
  const relink = (node: number): void => {
    next[prev[node]] = node
    if (next[node] !== -1) prev[next[node]] = node
  }

  const linearized = new OpSet(unknown)
  const visited = new VisitedCache(unknown)
  const stackNode = new Int32Array(n)
  const stackBound = new Int32Array(n)
  const stackState: State[] = new Array<State>(n)
  let depth = 0
  let state: State = null
  let best: { prefix: number[], state: State, blocked: number } | undefined

  // Candidates of a configuration, in order: the known calls before the first
  // known return (`bound`), then the unknown calls before it. Trying known ops
  // first means configurations are first visited with few unknown ops used,
  // which is what lets them cover the later visits.
  let inMain = true
  let cursor = next[MAIN]
  let bound = -1
  while (next[MAIN] !== -1) {
    if (--budget.remaining < 0) return 'timeout'
    let node: number
    if (inMain && isCall(cursor)) {
      node = cursor
      cursor = next[cursor]
    } else if (inMain) {
      inMain = false
      bound = cursor
      cursor = next[UNKNOWN]
      continue
    } else if (cursor !== -1 && rank[cursor] < rank[bound]) {
      node = cursor
      cursor = next[cursor]
    } else {
      // Op `bound` had to take effect by now and nothing placeable remains: backtrack.
      if (best === undefined || depth > best.prefix.length) {
        best = { prefix: Array.from(stackNode.subarray(0, depth), opOf), state, blocked: opOf(bound) }
      }
      if (depth === 0) return explain(ops, best)
      node = stackNode[--depth]
      state = stackState[depth]
      bound = stackBound[depth]
      linearized.toggle(opOf(node))
      inMain = !unknown[opOf(node)]
      if (inMain) relink(node + 1)
      relink(node)
      cursor = next[node]
      continue
    }

    const i = opOf(node)
    if (unknown[i] && twin[i] !== -1 && !linearized.has(twin[i])) continue
    const after = apply(state, ops[i].input, ops[i].output)
    // An unknown op that would change nothing is better left unused for later.
    if (after === undefined || (unknown[i] && after === state)) continue
    linearized.toggle(i)
    if (!visited.visit(linearized, after)) {
      linearized.toggle(i)
      continue
    }
    stackNode[depth] = node
    stackBound[depth] = bound
    stackState[depth++] = state
    state = after
    unlink(node)
    if (!unknown[i]) unlink(node + 1)
    inMain = true
    cursor = next[MAIN]
  }
  // Every known op is linearized; the unknown ones left may never have happened.
  return null
}

function explain (ops: readonly Operation[], best: { prefix: number[], state: State, blocked: number }): string {
  const { prefix } = best
  const shown = prefix.slice(-PREFIX_TAIL).map(i => describe(ops[i]))
  const elided = prefix.length > PREFIX_TAIL ? '..., ' : ''
  return `longest linearizable prefix: ${prefix.length}/${ops.length} ops [${elided}${shown.join(', ')}]` +
    `, leaving value ${JSON.stringify(best.state)}; then could not place ${describe(ops[best.blocked])}`
}

/** E.g. `c2 cas(x, null→"a") → ok [3, 7]`. */
function describe (op: Operation): string {
  const { input, output } = op
  const args = input.op === 'put'
    ? `, ${JSON.stringify(input.value)}`
    : input.op === 'cas' ? `, ${JSON.stringify(input.expect)}→${JSON.stringify(input.value)}` : ''
  let result = '?'
  if (output !== undefined) {
    const seen = input.op === 'get' || !output.ok ? ` ${JSON.stringify(output.value ?? null)}` : ''
    result = (output.ok ? 'ok' : 'failed') + seen
  }
  const window = output === undefined ? `[${op.call}, ?]` : `[${op.call}, ${op.return}]`
  return `c${op.clientId} ${input.op}(${input.key}${args}) → ${result} ${window}`
}
