/**
 * The contract every Raft Transport keeps, run against each implementation:
 * messages arrive intact (bytes included), in order per sender, sending to
 * an unknown node never throws, and a closed transport delivers nothing.
 */
import type { Test } from 'tap'
import type { Message } from '../../raft/core/messages.js'
import type { Transport } from '../../raft/driver/transport.js'
import { EntryType } from '../../raft/types.js'

export interface TransportPair {
  readonly a: Transport
  readonly b: Transport
  readonly aId: string
  readonly bId: string
  close(): Promise<void>
}

/** Byte arrays as plain arrays, so any Uint8Array subclass compares equal. */
function plain (m: Message): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => v instanceof Uint8Array ? Array.from(v) : v))
}

async function collect (to: Transport, n: number, ms = 10_000): Promise<Message[]> {
  const got: Message[] = []
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`only ${got.length} of ${n} messages arrived within ${ms} ms`)) }, ms)
    to.onMessage(m => {
      got.push(m)
      if (got.length === n) {
        clearTimeout(timer)
        resolve(got)
      }
    })
  })
}

export function runTransportCompliance (t: Test, name: string, makePair: () => Promise<TransportPair>): void {
  t.test(`${name}: messages arrive intact, bytes included`, async t => {
    const p = await makePair()
    t.teardown(() => p.close())
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256)
    const sent: Message[] = [
      { type: 'Append', from: p.aId, to: p.bId, term: 3, prevIndex: 9, prevTerm: 2, commit: 8, entries: [{ index: 10, term: 3, type: EntryType.Normal, data }] },
      { type: 'Snapshot', from: p.aId, to: p.bId, term: 3, meta: { index: 5, term: 1, config: { voters: [p.aId, p.bId], learners: [] } }, offset: 0, total: 300, chunk: data },
      { type: 'ReadIndexResp', from: p.aId, to: p.bId, term: 3, ctx: 'r1', index: -1 }
    ]
    const arriving = collect(p.b, sent.length)
    p.a.send(sent)
    t.same((await arriving).map(plain), sent.map(plain))
  })

  t.test(`${name}: messages from one sender arrive in the order sent`, async t => {
    const p = await makePair()
    t.teardown(() => p.close())
    const n = 1000
    const arriving = collect(p.b, n)
    for (let i = 1; i <= n; i++) p.a.send([{ type: 'Heartbeat', from: p.aId, to: p.bId, term: 1, commit: 0, readSeq: i, quiesce: false }])
    const seqs = (await arriving).map(m => (m as { readSeq: number }).readSeq)
    t.same(seqs, Array.from({ length: n }, (_, i) => i + 1))
  })

  t.test(`${name}: a burst far larger than any flow-control window arrives whole`, async t => {
    const p = await makePair()
    t.teardown(() => p.close())
    const n = 400
    const data = new Uint8Array(8192).fill(9)
    const arriving = collect(p.b, n, 30_000)
    for (let i = 1; i <= n; i++) {
      p.a.send([{ type: 'Append', from: p.aId, to: p.bId, term: 1, prevIndex: i - 1, prevTerm: 1, commit: 0, entries: [{ index: i, term: 1, type: EntryType.Normal, data }] }])
    }
    const got = await arriving
    t.same(got.map(m => (m as { prevIndex: number }).prevIndex), Array.from({ length: n }, (_, i) => i), '3.2 MB in order, nothing lost')
  })

  t.test(`${name}: sending to an unknown node neither throws nor delivers`, async t => {
    const p = await makePair()
    t.teardown(() => p.close())
    let stray = 0
    p.b.onMessage(() => { stray++ })
    t.doesNotThrow(() => { p.a.send([{ type: 'TimeoutNow', from: p.aId, to: 'nobody', term: 1 }]) })
    await new Promise(resolve => setTimeout(resolve, 100))
    t.equal(stray, 0)
  })

  t.test(`${name}: a closed transport receives nothing and its peer can still send`, async t => {
    const p = await makePair()
    t.teardown(() => p.close())
    let received = 0
    p.b.onMessage(() => { received++ })
    await p.b.close()
    t.doesNotThrow(() => { p.a.send([{ type: 'TimeoutNow', from: p.aId, to: p.bId, term: 1 }]) })
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(received, 0)
  })
}
