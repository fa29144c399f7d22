/**
 * The replicated-cache convergence checker, on hand-made final copies: copies
 * that agree on values the workload wrote pass; a disagreement, a missing
 * key and a value nobody wrote are each reported.
 */
import t from 'tap'
import type { HistoryEntry } from '../testkit/cluster-processes.js'
import { checkCacheConvergence, type FinalCache } from '../testkit/checks/cache-convergence.js'

const set = (node: number, key: string, value: string, at: number): HistoryEntry => ({ type: 'cache-set', node, at, workload: 'w1', cache: 'c', key, value })
const history = [set(0, 'k1', 'n1.100.1', 10), set(1, 'k1', 'n2.200.1', 20), set(1, 'k2', 'n2.200.2', 30), set(2, 'k3', 'n3.300.1', 40)]
const copy = (node: number, entries: Array<[string, string]>): FinalCache => ({ node, state: { entries } })
const agreed: Array<[string, string]> = [['k1', 'n2.200.1'], ['k2', 'n2.200.2'], ['k3', 'n3.300.1']]

t.test('copies that agree, on values the workload wrote, pass', async t => {
  t.same(checkCacheConvergence(history, [copy(0, agreed), copy(1, agreed), copy(2, agreed)], 'c'), [])
})

t.test('the write a kill interrupted before its report may be the one that won', async t => {
  // n3.300.2 was stamped and spread, but its process died before it reported: the next write of that process.
  const won: Array<[string, string]> = [...agreed.slice(0, 2), ['k3', 'n3.300.2']]
  t.same(checkCacheConvergence(history, [copy(0, won), copy(1, won), copy(2, won)], 'c'), [])
})

t.test('each planted fault is reported', async t => {
  const stale: Array<[string, string]> = [['k1', 'n1.100.1'], ...agreed.slice(1)]
  t.match(checkCacheConvergence(history, [copy(0, agreed), copy(1, stale), copy(2, agreed)], 'c'), [/n2 disagrees with n1 on 1 keys after heal: k1 \(n1\.100\.1 vs n2\.200\.1\)/])
  t.match(checkCacheConvergence(history, [copy(0, agreed), copy(1, agreed), copy(2, agreed.slice(0, 2))], 'c'), [/n3 disagrees with n1 on 1 keys after heal: k3 \(absent vs n3\.300\.1\)/])
  const invented: Array<[string, string]> = [...agreed.slice(0, 2), ['k3', 'n3.300.7']]
  t.match(checkCacheConvergence(history, [copy(0, invented), copy(1, invented)], 'c'), [/n1 holds k3 = n3\.300\.7, which no write/, /n2 holds k3 = n3\.300\.7, which no write/])
  t.match(checkCacheConvergence(history, [], 'c'), [/no node reported its copy/])
})
