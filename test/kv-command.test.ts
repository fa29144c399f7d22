import fc from 'fast-check'
import t from 'tap'
import { z } from 'zod'
import { decodeCommand, encodeCommand, isKvCommand, MAX_KEY, MAX_VALUE } from '../examples/kv/kv-command.js'

// The schema the written-out check replaced: both must accept exactly the same values.
const key = z.string().min(1).max(MAX_KEY)
const value = z.string().max(MAX_VALUE)
const reference = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('put'), key, value }),
  z.strictObject({ op: z.literal('delete'), key }),
  z.strictObject({ op: z.literal('cas'), key, expect: value.nullable(), value })
])

const str = fc.oneof(fc.string({ maxLength: 4 }), fc.constant(''), fc.constant('k'.repeat(MAX_KEY)), fc.constant('k'.repeat(MAX_KEY + 1)))
const good = fc.oneof(
  fc.record({ op: fc.constant('put'), key: str, value: str }),
  fc.record({ op: fc.constant('delete'), key: str }),
  fc.record({ op: fc.constant('cas'), key: str, expect: fc.option(str, { nil: null }), value: str })
)
const bad = fc.oneof(fc.constant(null), fc.constant(undefined), fc.nat(), fc.boolean(), fc.constant([]), fc.constant({}), fc.uint8Array({ maxLength: 3 }), fc.constantFrom('put', 'get', 'toString'), str)
const mutated = fc.tuple(good, fc.array(fc.tuple(fc.constantFrom('op', 'key', 'value', 'expect', 'extra'), fc.option(bad, { nil: 'drop' as const })), { maxLength: 3 }))
  .map(([c, ms]) => {
    const o: Record<string, unknown> = { ...c }
    for (const [k, v] of ms) {
      if (v === 'drop') delete o[k]
      else o[k] = v
    }
    return o
  })

t.test('the written-out check accepts exactly what the schema accepts', async t => {
  fc.assert(fc.property(fc.oneof(good, mutated, bad), v => isKvCommand(v) === reference.safeParse(v).success), { numRuns: 5000 })
  t.pass()
})

t.test('a command survives encoding; bytes that are not a command decode to null', async t => {
  const put = { op: 'put' as const, key: 'a', value: 'b' }
  t.same(decodeCommand(encodeCommand(put)), put)
  const cas = { op: 'cas' as const, key: 'a', expect: null, value: 'c' }
  t.same(decodeCommand(encodeCommand(cas)), cas)
  t.equal(decodeCommand(new Uint8Array([0xc1])), null, 'not msgpack')
  t.equal(decodeCommand(encodeCommand(put).subarray(0, 3)), null, 'truncated')
  t.throws(() => encodeCommand({ op: 'put', key: '', value: 'x' }), TypeError, 'an empty key is refused before it reaches the log')
})
