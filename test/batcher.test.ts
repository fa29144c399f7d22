import t from 'tap'
import { CommandBatcher } from '../lib/batcher.js'
import type { Command, CommandResult, SingleCommand } from '../lib/coordination/commands.js'
import type { Applied, Proposer } from '../lib/proposer.js'

/** The proposer's side as the batcher sees it: each submit recorded, answered when the test says. */
function recordingProposer (): { proposer: Proposer, sent: Command[], answer: (i: number, result: CommandResult) => void } {
  const sent: Command[] = []
  const waiting: Array<(a: Applied) => void> = []
  const proposer = {
    submit: async (_client: string, cmd: Command): Promise<Applied> => {
      sent.push(cmd)
      return await new Promise(resolve => { waiting.push(resolve) })
    }
  } as unknown as Proposer
  return { proposer, sent, answer: (i, result) => { waiting[i]({ result, index: 1 }) } }
}

const release = (name: string): SingleCommand => ({ op: 'release', kind: 'lock', name, owner: `o-${name}` })
const turn = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

t.test('commands of one session in one turn go as one batch, each answered with its own result', async t => {
  const { proposer, sent, answer } = recordingProposer()
  const b = new CommandBatcher(proposer, () => 7)
  const calls = ['x', 'y', 'z'].map(async n => await b.submit('s1', release(n)))
  await turn()
  t.same(sent, [{ op: 'batch', cmds: [release('x'), release('y'), release('z')] }])
  answer(0, { ok: true, value: [{ ok: true, value: 'x' }, { ok: true, value: 'y' }, { ok: true, value: 'z' }] })
  t.same((await Promise.all(calls)).map(r => [r.result, r.sentAt]), [[{ ok: true, value: 'x' }, 7], [{ ok: true, value: 'y' }, 7], [{ ok: true, value: 'z' }, 7]])
})

t.test('an aborted command leaves a batch not yet sent; the others go', async t => {
  const { proposer, sent, answer } = recordingProposer()
  const b = new CommandBatcher(proposer, () => 0)
  const ac = new AbortController()
  const kept = b.submit('s1', release('kept'))
  const gone = b.submit('s1', release('gone'), { signal: ac.signal })
  ac.abort(new Error('caller gave up'))
  await t.rejects(gone, { message: 'caller gave up' })
  await turn()
  t.same(sent, [release('kept')], 'only the command still wanted is sent')
  answer(0, { ok: true, value: null })
  t.same((await kept).result, { ok: true, value: null })
})

t.test('an abort after the batch left rejects that caller alone', async t => {
  const { proposer, sent, answer } = recordingProposer()
  const b = new CommandBatcher(proposer, () => 0)
  const ac = new AbortController()
  const late = b.submit('s1', release('late'), { signal: ac.signal })
  const other = b.submit('s1', release('other'))
  await turn()
  ac.abort(new Error('too late'))
  await t.rejects(late, { message: 'too late' })
  answer(0, { ok: true, value: [{ ok: true, value: 1 }, { ok: true, value: 2 }] })
  t.same((await other).result, { ok: true, value: 2 })
  t.equal(sent.length, 1)
})

t.test('an aborted signal is refused before anything is queued; another session starts another batch', async t => {
  const { proposer, sent } = recordingProposer()
  const b = new CommandBatcher(proposer, () => 0)
  await t.rejects(b.submit('s1', release('a'), { signal: AbortSignal.abort(new Error('already')) }), { message: 'already' })
  void b.submit('s1', release('b'))
  void b.submit('s2', release('c'))
  await turn()
  t.same(sent, [release('b'), release('c')])
})

t.test('commands with the same key go in separate batches, in order', async t => {
  const { proposer, sent, answer } = recordingProposer()
  const b = new CommandBatcher(proposer, () => 0)
  const first = b.submit('s1', release('x'), { key: 'lock:x' })
  const other = b.submit('s1', release('y'), { key: 'lock:y' })
  const second = b.submit('s1', release('x2'), { key: 'lock:x' })
  await turn()
  t.same(sent, [{ op: 'batch', cmds: [release('x'), release('y')] }, release('x2')], 'the second command on lock x starts a new batch')
  answer(0, { ok: true, value: [{ ok: true, value: 1 }, { ok: true, value: 2 }] })
  answer(1, { ok: true, value: 3 })
  t.same([(await first).result, (await other).result, (await second).result].map(r => r.ok && r.value), [1, 2, 3])
})
