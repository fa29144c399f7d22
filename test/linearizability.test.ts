import t from 'tap'
import fc from 'fast-check'
import { checkKvHistory, type KvInput, type KvOutput, type Operation } from '../sim/linearizability.js'

// Terse builders: client, key, [call, return], then the observed result.
const get = (c: number, key: string, call: number, ret: number, value: string | null): Operation =>
  ({ clientId: c, input: { op: 'get', key }, call, return: ret, output: { ok: true, value } })
const put = (c: number, key: string, value: string, call: number, ret: number): Operation =>
  ({ clientId: c, input: { op: 'put', key, value }, call, return: ret, output: { ok: true } })
const del = (c: number, key: string, call: number, ret: number): Operation =>
  ({ clientId: c, input: { op: 'delete', key }, call, return: ret, output: { ok: true } })
const cas = (c: number, key: string, expect: string | null, value: string, call: number, ret: number, output: KvOutput): Operation =>
  ({ clientId: c, input: { op: 'cas', key, expect, value }, call, return: ret, output })
/** The same operation, but its client never heard back. */
const lost = (op: Operation): Operation => ({ ...op, return: Infinity, output: undefined })

t.test('sequential histories are linearizable', async t => {
  t.same(checkKvHistory([]), { ok: true })
  t.same(checkKvHistory([
    get(0, 'x', 0, 1, null),
    put(0, 'x', 'a', 2, 3),
    get(1, 'x', 4, 5, 'a'),
    cas(1, 'x', 'a', 'b', 6, 7, { ok: true }),
    cas(0, 'x', 'a', 'c', 8, 9, { ok: false, value: 'b' }),
    del(0, 'x', 10, 11),
    get(1, 'x', 12, 13, null),
    cas(1, 'x', null, 'd', 14, 15, { ok: true }),
    get(0, 'x', 16, 17, 'd')
  ]), { ok: true })
})

t.test('a read concurrent with a write may see either value', async t => {
  for (const seen of [null, 'a']) {
    t.ok(checkKvHistory([put(0, 'x', 'a', 0, 10), get(1, 'x', 2, 3, seen)]).ok, `read ${seen}`)
  }
  // The read may also be ordered before a write whose call precedes it.
  t.ok(checkKvHistory([put(0, 'x', 'a', 0, 10), get(1, 'x', 1, 2, null), get(1, 'x', 3, 4, 'a')]).ok)
})

t.test('a call and a return at the same instant count as concurrent', async t => {
  t.ok(checkKvHistory([put(0, 'x', 'a', 0, 5), get(1, 'x', 5, 6, null)]).ok)
  t.ok(checkKvHistory([put(0, 'x', 'a', 0, 5), get(1, 'x', 5, 6, 'a')]).ok)
})

t.test('two concurrent writes: later reads must agree on the winner', async t => {
  const writes = [put(0, 'x', 'a', 0, 10), put(1, 'x', 'b', 1, 9)]
  t.ok(checkKvHistory([...writes, get(2, 'x', 11, 12, 'a'), get(2, 'x', 13, 14, 'a')]).ok)
  t.ok(checkKvHistory([...writes, get(2, 'x', 11, 12, 'b'), get(3, 'x', 13, 14, 'b')]).ok)
  // Both writes completed before either read, so the register cannot flip back.
  const flip = checkKvHistory([...writes, get(2, 'x', 11, 12, 'b'), get(3, 'x', 13, 14, 'a')])
  t.equal(flip.ok, false)
  t.equal(flip.timedOut, undefined)
  // Reads concurrent with both writes may see them in either order.
  t.ok(checkKvHistory([...writes, get(2, 'x', 2, 3, 'b'), get(3, 'x', 4, 5, 'a')]).ok)
})

t.test('a stale read after a completed write is not linearizable', async t => {
  const r = checkKvHistory([put(0, 'x', 'a', 0, 1), get(1, 'x', 2, 3, null)])
  t.equal(r.ok, false)
  t.equal(r.key, 'x')
  t.match(r.explanation, /longest linearizable prefix: 1\/2 ops \[c0 put\(x, "a"\) → ok \[0, 1\]\], leaving value "a"; then could not place c1 get\(x\) → ok null \[2, 3\]/)
})

t.test('new-old inversion: reads during a write cannot go back to the old value', async t => {
  const r = checkKvHistory([put(0, 'x', 'a', 0, 10), get(1, 'x', 1, 2, 'a'), get(2, 'x', 3, 4, null)])
  t.equal(r.ok, false)
  t.match(r.explanation, /could not place c2 get\(x\) → ok null/)
})

t.test('cas outcomes must match the value at the linearization point', async t => {
  const before = [put(0, 'x', 'a', 0, 1)]
  t.equal(checkKvHistory([...before, cas(1, 'x', 'b', 'c', 2, 3, { ok: true })]).ok, false, 'swap with a wrong expectation')
  t.equal(checkKvHistory([...before, cas(1, 'x', 'a', 'c', 2, 3, { ok: false, value: 'a' })]).ok, false, 'failed although it matched')
  t.equal(checkKvHistory([...before, cas(1, 'x', 'b', 'c', 2, 3, { ok: false, value: 'z' })]).ok, false, 'failure reports a wrong value')
  t.equal(checkKvHistory([...before, cas(1, 'x', 'b', 'c', 2, 3, { ok: false })]).ok, false, 'failure omits the value, which means absent')
  t.ok(checkKvHistory([...before, cas(1, 'x', 'b', 'c', 2, 3, { ok: false, value: 'a' })]).ok)
  // Two clients race a cas from absent: exactly one may win.
  const race = (second: KvOutput): boolean => checkKvHistory([
    cas(0, 'y', null, 'p', 0, 10, { ok: true }),
    cas(1, 'y', null, 'q', 1, 9, second)
  ]).ok
  t.ok(race({ ok: false, value: 'p' }))
  t.notOk(race({ ok: true }))
})

t.test('operations with unknown outcomes', async t => {
  const timedOut = lost(put(0, 'x', 'a', 0, 1))
  t.ok(checkKvHistory([timedOut, get(1, 'x', 5, 6, 'a')]).ok, 'a timed-out put that is later read took effect')
  t.ok(checkKvHistory([timedOut, get(1, 'x', 5, 6, null)]).ok, 'a timed-out put never observed may never have happened')
  t.ok(checkKvHistory([timedOut, get(1, 'x', 5, 6, null), get(1, 'x', 7, 8, 'a')]).ok, 'it may also take effect long after the timeout')
  const r = checkKvHistory([timedOut, get(1, 'x', 5, 6, 'a'), get(1, 'x', 7, 8, null)])
  t.equal(r.ok, false, 'once observed it cannot be undone')
  t.match(r.explanation, /c0 put\(x, "a"\) → \? \[0, \?\]/)
  t.equal(checkKvHistory([get(1, 'x', 0, 1, 'a'), lost(put(0, 'x', 'a', 2, 3))]).ok, false, 'it cannot take effect before its call')
  // An unknown cas either swapped or not; a later read decides which.
  const pending = lost(cas(0, 'x', null, 'b', 0, 1, { ok: true }))
  t.ok(checkKvHistory([pending, get(1, 'x', 2, 3, 'b')]).ok)
  t.ok(checkKvHistory([pending, get(1, 'x', 2, 3, null)]).ok)
  // Unknown gets carry no information and never constrain anything.
  t.ok(checkKvHistory([lost(get(0, 'x', 0, 1, 'never')), put(1, 'x', 'a', 2, 3)]).ok)
})

t.test('keys are checked independently', async t => {
  const good = [put(0, 'x', 'a', 0, 10), put(1, 'y', 'b', 1, 2), get(2, 'x', 3, 4, 'a'), get(2, 'y', 5, 6, 'b')]
  t.same(checkKvHistory(good), { ok: true })
  const r = checkKvHistory([...good, get(3, 'y', 7, 8, 'a'), get(3, 'x', 9, 10, 'a')])
  t.equal(r.ok, false)
  t.equal(r.key, 'y', 'a value written to x is not visible on y')
})

t.test('the step budget turns an expensive search into timedOut', async t => {
  const history = [put(0, 'x', 'a', 0, 10), put(1, 'x', 'b', 0, 10), get(2, 'x', 11, 12, 'b')]
  t.ok(checkKvHistory(history).ok)
  const r = checkKvHistory(history, { maxSteps: 2 })
  t.same({ ok: r.ok, key: r.key, timedOut: r.timedOut }, { ok: false, key: 'x', timedOut: true })
  t.match(r.explanation, /budget of 2 steps/)
})

t.test('malformed histories are rejected', async t => {
  t.throws(() => checkKvHistory([{ ...put(0, 'x', 'a', 0, 1), output: { ok: false } }]), TypeError)
  t.throws(() => checkKvHistory([put(0, 'x', 'a', 5, 4)]), RangeError)
  t.throws(() => checkKvHistory([put(0, 'x', 'a', NaN, 4)]), RangeError)
})

/** What a client ran, against which key, and what the real store did with it. */
const stepArb = fc.record({
  clientId: fc.integer({ min: 0, max: 4 }),
  key: fc.constantFrom('x', 'y', 'z'),
  kind: fc.constantFrom<KvInput['op']>('get', 'put', 'cas', 'delete'),
  value: fc.constantFrom('a', 'b', 'c'),
  expect: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: null }),
  expectCurrent: fc.boolean(),
  callEarly: fc.nat({ max: 40 }),
  returnLate: fc.nat({ max: 40 }),
  fate: fc.constantFrom('known', 'known', 'known', 'lostAfterEffect', 'lostWithoutEffect')
})
type Step = typeof stepArb extends fc.Arbitrary<infer S> ? S : never

/** Applies an operation atomically to a real map and returns the store's answer. */
function runOn (store: Map<string, string>, input: KvInput): KvOutput {
  const current = store.get(input.key) ?? null
  switch (input.op) {
    case 'get':
      return { ok: true, value: current }
    case 'put':
      store.set(input.key, input.value)
      return { ok: true }
    case 'delete':
      store.delete(input.key)
      return { ok: true }
    case 'cas':
      if (current !== input.expect) return { ok: false, value: current }
      store.set(input.key, input.value)
      return { ok: true }
  }
}

/**
 * Runs the steps one at a time against a real map. Step i takes effect at
 * time 10i and its [call, return] window is stretched randomly around that
 * point, so windows overlap but the real effect order is always a valid
 * linearization.
 */
function execute (steps: readonly Step[]): Operation[] {
  const store = new Map<string, string>()
  return steps.map((s, i) => {
    const input: KvInput = s.kind === 'get' || s.kind === 'delete'
      ? { op: s.kind, key: s.key }
      : s.kind === 'put'
        ? { op: 'put', key: s.key, value: s.value }
        : { op: 'cas', key: s.key, expect: s.expectCurrent ? store.get(s.key) ?? null : s.expect, value: s.value }
    const output = s.fate === 'lostWithoutEffect' ? undefined : runOn(store, input)
    const effect = 10 * i
    const op: Operation = { clientId: s.clientId, input, call: effect - s.callEarly, return: effect + s.returnLate, output }
    return s.fate === 'known' ? op : lost(op)
  })
}

t.test('property: histories of a real atomic map are linearizable', async t => {
  fc.assert(fc.property(fc.array(stepArb, { maxLength: 80 }), steps => {
    const r = checkKvHistory(execute(steps))
    return r.ok && r.timedOut === undefined
  }), { numRuns: 300 })
  t.pass()
})

t.test('property: a read of a value never written is caught', async t => {
  fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), fc.nat(), (steps, pick) => {
    const history = execute(steps)
    const reads = history.filter(op => op.input.op === 'get' && op.output !== undefined)
    fc.pre(reads.length > 0)
    const victim = reads[pick % reads.length]
    victim.output = { ok: true, value: 'never-written' }
    const r = checkKvHistory(history)
    return !r.ok && r.timedOut === undefined && r.key === victim.input.key
  }), { numRuns: 300 })
  t.pass()
})

/** Reference semantics: tries every order of every subset, with no pruning at all. */
function bruteForce (history: readonly Operation[]): boolean {
  const apply = (state: string | null, op: Operation): string | null | undefined => {
    const { input, output } = op
    const seen = output?.value ?? null
    if (input.op === 'get') return output === undefined || seen === state ? state : undefined
    if (input.op === 'put') return input.value
    if (input.op === 'delete') return null
    if (state === input.expect) return output === undefined || output.ok ? input.value : undefined
    return output === undefined || (!output.ok && seen === state) ? state : undefined
  }
  const search = (left: readonly Operation[], states: ReadonlyMap<string, string | null>): boolean => {
    if (left.every(op => op.output === undefined)) return true
    return left.some(op => {
      // Op goes next unless some pending known op returned before it was called.
      if (left.some(other => other.output !== undefined && other.return < op.call)) return false
      const after = apply(states.get(op.input.key) ?? null, op)
      return after !== undefined && search(left.filter(o => o !== op), new Map(states).set(op.input.key, after))
    })
  }
  return search(history, new Map())
}

t.test('property: the pruned search agrees with brute force on small random histories', async t => {
  const value = fc.constantFrom('a', 'b')
  const opArb = fc.record({
    clientId: fc.nat({ max: 3 }),
    input: fc.oneof(
      fc.record({ op: fc.constant('get' as const), key: fc.constantFrom('x', 'y') }),
      fc.record({ op: fc.constant('put' as const), key: fc.constantFrom('x', 'y'), value }),
      fc.record({ op: fc.constant('cas' as const), key: fc.constantFrom('x', 'y'), expect: fc.option(value, { nil: null }), value }),
      fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom('x', 'y') })
    ),
    call: fc.nat({ max: 20 }),
    length: fc.nat({ max: 10 }),
    output: fc.option(fc.record({ ok: fc.boolean(), value: fc.option(value, { nil: null }) }), { nil: undefined })
  }).map(({ length, output, ...op }): Operation => {
    // Only cas may fail; the other kinds would be rejected as malformed.
    const result = output === undefined ? undefined : { ...output, ok: output.ok || op.input.op !== 'cas' } as KvOutput
    return { ...op, return: result === undefined ? Infinity : op.call + length, output: result }
  })
  fc.assert(fc.property(fc.array(opArb, { maxLength: 7 }), history => {
    return checkKvHistory(history).ok === bruteForce(history)
  }), { numRuns: 2000 })
  t.pass()
})

/** Deterministic PRNG (mulberry32) so the simulated history is reproducible. */
function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), seed | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

t.test('a 1000-op history of 5 concurrent clients over 10 keys checks without timing out', async t => {
  const random = prng(42)
  const store = new Map<string, string>()
  const history: Operation[] = []
  // Each client has at most one request in flight; the store applies it
  // atomically at some tick between the call and the response.
  const inFlight = new Map<number, { op: Operation, applied: boolean }>()
  let issued = 0
  for (let now = 0; issued < 1000 || inFlight.size > 0; now++) {
    const clientId = Math.floor(random() * 5)
    const pending = inFlight.get(clientId)
    if (pending === undefined) {
      if (issued === 1000) continue
      const key = `k${Math.floor(random() * 10)}`
      const roll = random()
      const value = `c${clientId}-${issued}`
      const current = store.get(key) ?? null
      const input: KvInput = roll < 0.4
        ? { op: 'get', key }
        : roll < 0.7
          ? { op: 'put', key, value }
          : roll < 0.9 ? { op: 'cas', key, expect: random() < 0.5 ? current : null, value } : { op: 'delete', key }
      const op: Operation = { clientId, input, call: now, return: Infinity }
      inFlight.set(clientId, { op, applied: false })
      history.push(op)
      issued++
    } else if (!pending.applied) {
      const { op } = pending
      if (random() < 0.01) { // the server crashed before applying it
        inFlight.delete(clientId)
        continue
      }
      op.output = runOn(store, op.input)
      pending.applied = true
    } else {
      // Lose 1% of responses: the client only knows it timed out.
      if (random() < 0.01) pending.op.output = undefined
      else pending.op.return = now
      inFlight.delete(clientId)
    }
  }
  t.equal(history.length, 1000)
  t.same(checkKvHistory(history), { ok: true })
  const lastRead = [...history].reverse().find(op => op.input.op === 'get' && op.output !== undefined)
  if (lastRead === undefined) throw new Error('the simulation produced no reads')
  lastRead.output = { ok: true, value: 'never-written' }
  const r = checkKvHistory(history)
  t.same({ ok: r.ok, key: r.key, timedOut: r.timedOut }, { ok: false, key: lastRead.input.key, timedOut: undefined })
})
