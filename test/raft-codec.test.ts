import fc from 'fast-check'
import t from 'tap'
import { decodeRaftMessage, encodeRaftMessage, fastValid, parseWithSchema } from '../gossip/raft-codec.js'

const env = { from: fc.constantFrom('n1', 'n2'), to: fc.constantFrom('n1', 'n3'), term: fc.nat(50) }
const goodEntry = fc.record({ index: fc.nat(), term: fc.nat(), type: fc.constantFrom(0, 1, 2), data: fc.uint8Array({ maxLength: 8 }) })
const good = fc.oneof(
  fc.record({ type: fc.constant('Append'), ...env, prevIndex: fc.nat(100), prevTerm: fc.nat(50), entries: fc.array(goodEntry, { maxLength: 3 }), commit: fc.nat(100) }),
  fc.record({ type: fc.constant('AppendResp'), ...env, reject: fc.boolean(), index: fc.nat(100), hintIndex: fc.nat(100), hintTerm: fc.nat(50) }),
  fc.record({ type: fc.constant('Heartbeat'), ...env, commit: fc.nat(100), readSeq: fc.nat(10), quiesce: fc.boolean() }),
  fc.record({ type: fc.constant('HeartbeatResp'), ...env, readSeq: fc.nat(10) }),
  fc.record({ type: fc.constant('Commit'), ...env, commit: fc.nat(100) })
)
const keys = ['type', 'from', 'to', 'term', 'prevIndex', 'prevTerm', 'entries', 'commit', 'reject', 'index', 'hintIndex', 'hintTerm', 'readSeq', 'extra']
const badValue = fc.oneof(
  fc.integer({ min: -5, max: -1 }), fc.double(), fc.constant(2 ** 60), fc.constant('7'), fc.constant(null), fc.constant(undefined),
  fc.boolean(), fc.constantFrom('', 'x'.repeat(300), 'Vote', 'Snapshot', 'toString'), fc.constant([]), fc.constant({}),
  fc.uint8Array({ maxLength: 4 }), fc.nat(100), fc.string({ maxLength: 5 })
)
const mutation = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...keys), value: badValue }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
  fc.record({ op: fc.constant('entry' as const), key: fc.constantFrom('index', 'term', 'type', 'data', 'extra'), value: badValue }),
  fc.record({ op: fc.constant('dropEntryKey' as const), key: fc.constantFrom('index', 'term', 'type', 'data') })
)
const mutated = fc.tuple(good, fc.array(mutation, { maxLength: 3 })).map(([m, ms]) => {
  const o: Record<string, unknown> = { ...m }
  if (Array.isArray(o.entries)) o.entries = o.entries.map(e => ({ ...e }))
  for (const mu of ms) {
    if (mu.op === 'set') o[mu.key] = mu.value
    else if (mu.op === 'delete') delete o[mu.key]
    else if (Array.isArray(o.entries) && o.entries.length > 0) {
      const e = o.entries[0] as Record<string, unknown>
      if (mu.op === 'entry') e[mu.key] = mu.value
      else delete e[mu.key]
    }
  }
  return o
})

function schemaAccepts (x: unknown): boolean {
  try {
    parseWithSchema(x)
    return true
  } catch {
    return false
  }
}

t.test('the fast check of write-path messages never accepts what the schema refuses', async t => {
  let accepted = 0
  fc.assert(fc.property(mutated, x => {
    if (!fastValid(x)) return true
    accepted++
    return schemaAccepts(x)
  }), { numRuns: 20_000 })
  t.ok(accepted > 0, `${accepted} generated values passed the fast check, each also passing the schema`)
})

t.test('the fast check accepts every well-formed write-path message, so the schema is skipped for them', async t => {
  fc.assert(fc.property(good, m => fastValid(m) && schemaAccepts(m)), { numRuns: 2000 })
  t.pass('accepted by both')
})

t.test('a frame refused by the fast check still gets the schema\'s explanation', async t => {
  const frame = encodeRaftMessage({ type: 'Commit', from: 'n1', to: 'n2', term: 1, commit: -1 } as never)
  t.throws(() => decodeRaftMessage(frame), { name: 'InvalidFrameError', message: /commit/ })
  const ok = decodeRaftMessage(encodeRaftMessage({ type: 'Append', from: 'n1', to: 'n2', term: 2, prevIndex: 4, prevTerm: 1, commit: 4, entries: [{ index: 5, term: 2, type: 0, data: new Uint8Array([1]) }] }))
  t.match(ok, { type: 'Append', prevIndex: 4, entries: [{ index: 5 }] })
  t.throws(() => decodeRaftMessage(encodeRaftMessage({ type: 'Append', from: 'n1', to: 'n2', term: 2, prevIndex: 4, prevTerm: 1, commit: 4, entries: [{ index: 7, term: 2, type: 0, data: new Uint8Array([1]) }] })), /expected 5/, 'entries must still follow prevIndex')
})

t.test('a heartbeat carries its quiesce mark, a boolean that must be there', async t => {
  const hb = { type: 'Heartbeat', from: 'n1', to: 'n2', term: 3, commit: 7, readSeq: 2, quiesce: true } as const
  t.same(decodeRaftMessage(encodeRaftMessage(hb)), hb, 'round trip')
  const { quiesce: _, ...unmarked } = hb
  for (const bad of [unmarked, { ...hb, quiesce: 1 }, { ...hb, quiesce: 'yes' }]) {
    t.notOk(fastValid(bad), `fast check refuses ${JSON.stringify(bad)}`)
    t.throws(() => decodeRaftMessage(encodeRaftMessage(bad as never)), { name: 'InvalidFrameError', message: /quiesce/ }, 'the schema names the field')
  }
})
