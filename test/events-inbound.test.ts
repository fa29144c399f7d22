/**
 * Per-publisher ordering and repair of received events (lib/events/
 * inbound.ts) driven directly, with the publisher's buffer as a list: the
 * cases the real-node tests cannot force deterministically (an event that
 * comes again after it was fetched, a publisher that restarted, a fetch
 * that fails).
 */
import t from 'tap'
import { silentLogger } from '../gossip/logger.js'
import type { EventBody, FetchRequest, FetchResponse, Head } from '../lib/events/event-codec.js'
import { InboundOrder } from '../lib/events/inbound.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

interface Harness {
  inbound: InboundOrder
  delivered: string[]
  gaps: string[]
  fetches: FetchRequest[]
  /** What the publisher's buffer holds, by incarnation. */
  buffer: Map<string, number[]>
  /** Fetches still to fail (Infinity: all). */
  failFetch: number
  settle: () => Promise<void>
}

function harness (): Harness {
  const h: Harness = {
    delivered: [],
    gaps: [],
    fetches: [],
    buffer: new Map(),
    failFetch: 0,
    settle: async () => { for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve)) },
    inbound: undefined as unknown as InboundOrder
  }
  h.inbound = new InboundOrder({
    fetch: async (_publisher, req): Promise<FetchResponse> => {
      h.fetches.push(req)
      if (h.failFetch > 0) {
        h.failFetch--
        throw new Error('unreachable')
      }
      const [incarnation, seqs] = [...h.buffer.entries()].at(-1) ?? ['none', []]
      return { incarnation, events: incarnation === req.incarnation ? seqs.filter(s => s >= req.from && s <= req.to).map(s => enc.encode(`${incarnation}:${s}`)) : [] }
    },
    open: async (_publisher, data): Promise<EventBody> => {
      const [incarnation, seq] = dec.decode(data).split(':')
      return { incarnation, seq: Number(seq), topic: 't', payload: null }
    },
    deliver: (publisher, b) => { h.delivered.push(`${publisher}:${b.incarnation}:${b.seq}`) },
    gap: (publisher, from, to) => { h.gaps.push(`${publisher}:${from}-${to}`) },
    log: silentLogger,
    fetchAttempts: 3,
    fetchRetryMs: 1
  })
  return h
}

async function until (what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

const body = (incarnation: string, seq: number): EventBody => ({ incarnation, seq, topic: 't', payload: null })
function receive (h: Harness, publisher: string, b: EventBody): void {
  h.inbound.receive(publisher, async () => b)
}

t.test('in-order events are delivered; repeats are dropped and counted', async t => {
  const h = harness()
  for (const s of [5, 6, 6, 7, 5]) receive(h, 'p', body('i1', s))
  await h.settle()
  t.same(h.delivered, ['p:i1:5', 'p:i1:6', 'p:i1:7'], 'the first event seen sets where the sequence starts here')
  t.equal(h.inbound.duplicates, 2)
  t.same(h.fetches, [])
})

t.test('a skip fetches the missing events first; an event fetched and then gossiped is a duplicate', async t => {
  const h = harness()
  h.buffer.set('i1', [1, 2, 3, 4, 5])
  receive(h, 'p', body('i1', 1))
  receive(h, 'p', body('i1', 4))
  receive(h, 'p', body('i1', 2))
  receive(h, 'q', body('j1', 1))
  await h.settle()
  t.same(h.fetches, [{ incarnation: 'i1', from: 2, to: 3 }])
  t.same(h.delivered.filter(d => d.startsWith('p')), ['p:i1:1', 'p:i1:2', 'p:i1:3', 'p:i1:4'])
  t.equal(h.inbound.repaired, 2)
  t.equal(h.inbound.duplicates, 1, 'the late copy of 2')
  t.ok(h.delivered.includes('q:j1:1'), 'another publisher is not held up')
})

t.test('what the buffer lacks, or a fetch that fails every try, is reported as a gap and delivery goes on', async t => {
  const h = harness()
  h.buffer.set('i1', [4, 5, 6])
  receive(h, 'p', body('i1', 1))
  receive(h, 'p', body('i1', 7))
  await h.settle()
  t.same(h.gaps, ['p:2-3'])
  t.same(h.delivered, ['p:i1:1', 'p:i1:4', 'p:i1:5', 'p:i1:6', 'p:i1:7'])
  h.failFetch = Infinity
  h.fetches.length = 0
  receive(h, 'p', body('i1', 10))
  await until('the gap is reported', () => h.gaps.length === 2)
  t.same(h.gaps, ['p:2-3', 'p:8-9'])
  t.equal(h.fetches.length, 3, 'after three tries')
  await h.settle()
  t.same(h.delivered.at(-1), 'p:i1:10')
})

t.test('a fetch that fails while the publisher\'s connection is replaced is tried again: nothing is reported lost that its buffer still holds', async t => {
  const h = harness()
  h.buffer.set('i1', [1, 2, 3, 4, 5])
  receive(h, 'p', body('i1', 1))
  h.failFetch = 2
  receive(h, 'p', body('i1', 5))
  receive(h, 'p', body('i1', 6))
  await until('6 is delivered', () => h.delivered.includes('p:i1:6'))
  t.same(h.gaps, [])
  t.same(h.delivered, ['p:i1:1', 'p:i1:2', 'p:i1:3', 'p:i1:4', 'p:i1:5', 'p:i1:6'], 'in order: 6 waited behind the retried fetch')
})

t.test('a restarted publisher starts again from 1; an older start is ignored', async t => {
  const h = harness()
  receive(h, 'p', body('i1', 8))
  h.buffer.set('i2', [1, 2, 3])
  receive(h, 'p', body('i2', 3))
  receive(h, 'p', body('i1', 9))
  await h.settle()
  t.same(h.delivered, ['p:i1:8', 'p:i2:1', 'p:i2:2', 'p:i2:3'])
  t.equal(h.inbound.duplicates, 1)
})

t.test('events wait for the head asked for on connecting, which sets where a new publisher starts', async t => {
  const h = harness()
  let answer!: (head: Head) => void
  h.inbound.head('p', new Promise(resolve => { answer = resolve }))
  h.buffer.set('i1', [1, 2, 3, 4, 5])
  receive(h, 'p', body('i1', 5))
  receive(h, 'p', body('i1', 2))
  await h.settle()
  t.same(h.delivered, [], 'nothing before the answer')
  answer({ incarnation: 'i1', seq: 1, since: 1 })
  await h.settle()
  t.same(h.delivered, ['p:i1:2', 'p:i1:3', 'p:i1:4', 'p:i1:5'], 'from after the head, an overtaken event fetched')
  t.equal(h.inbound.publishers, 1)
})

t.test('a new publisher\'s stream starts after where it saw this node subscribe, though its answer comes after later events', async t => {
  const h = harness()
  h.buffer.set('i1', [1, 2, 3, 4])
  h.inbound.head('p', Promise.resolve({ incarnation: 'i1', seq: 4, since: 1 }))
  receive(h, 'p', body('i1', 4))
  await h.settle()
  t.same(h.delivered, ['p:i1:2', 'p:i1:3', 'p:i1:4'], '2 and 3, published after it knew of us, fetched')
  t.same(h.gaps, [])
})

t.test('a head learnt on reconnect fetches what was missed, or sets the start for a new publisher', async t => {
  const h = harness()
  h.inbound.head('new', Promise.resolve({ incarnation: 'k1', seq: 40, since: 40 }))
  receive(h, 'new', body('k1', 41))
  receive(h, 'p', body('i1', 1))
  h.buffer.set('i1', [1, 2, 3])
  h.inbound.head('p', Promise.resolve({ incarnation: 'i1', seq: 3, since: 3 }))
  h.inbound.head('p', Promise.resolve({ incarnation: 'i0', seq: 99, since: 99 }))
  h.inbound.head('p', Promise.resolve(null))
  await h.settle()
  t.same(h.delivered.filter(d => d.startsWith('new')), ['new:k1:41'])
  t.same(h.delivered.filter(d => d.startsWith('p')), ['p:i1:1', 'p:i1:2', 'p:i1:3'])
  t.same(h.fetches, [{ incarnation: 'i1', from: 2, to: 3 }], 'nothing fetched for the new publisher nor for an older start')
})
