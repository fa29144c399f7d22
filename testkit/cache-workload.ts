/**
 * The cache workload of a cluster-node process (see CacheWorkload): a
 * replicated cache written and read by every node with tagged values, and an
 * invalidation cache in front of a file "database" in which each key has one
 * writer node, read by every node. Everything is reported as it happens, in
 * the order this process did it; the checkers (testkit/checks/) rely on that
 * order and on a write being reported before it is made.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CacheChange } from '../lib/cache/cache.js'
import type { Cluster } from '../lib/index.js'
import type { CacheContents, CacheWorkload, NodeEventBody, WriteTag } from './cluster-node-protocol.js'
import { machineNow } from './cluster-node-protocol.js'

type Report = (event: NodeEventBody) => void

function isTag (v: unknown): v is WriteTag {
  return typeof v === 'object' && v !== null && typeof (v as WriteTag).w === 'string' && typeof (v as WriteTag).s === 'string' && typeof (v as WriteTag).n === 'number'
}

async function dbRead (dir: string, key: string): Promise<number> {
  try {
    return Number(await readFile(join(dir, key), 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
}

/** Replaces the key's version at once (rename), so a concurrent reader sees the old or the new, never half. */
async function dbWrite (dir: string, key: string, version: number, owner: string): Promise<void> {
  const tmp = join(dir, `.${key}.${owner}.tmp`)
  await writeFile(tmp, String(version))
  await rename(tmp, join(dir, key))
}

/** Runs the workload until `stop`. */
export async function runCacheWorkload (cluster: Cluster, workload: string, w: CacheWorkload, stop: AbortSignal, report: Report): Promise<void> {
  const rep = cluster.cache<string, WriteTag>(w.replicated, { mode: 'replicated', antiEntropyIntervalMs: w.antiEntropyIntervalMs })
  const inv = cluster.cache<string, number>(w.invalidation, { mode: 'invalidation' })
  const onRep = (c: CacheChange<string, WriteTag>): void => {
    if (c.origin === 'remote') report({ type: 'cache-change', workload, cache: w.replicated, key: c.key, op: c.op, value: c.value ?? null })
  }
  const onInv = (c: CacheChange<string, number>): void => {
    if (c.origin === 'remote') report({ type: 'cache-change', workload, cache: w.invalidation, key: c.key, op: c.op, value: null })
  }
  rep.on('change', onRep)
  inv.on('change', onInv)
  const start = `${cluster.id}.${process.pid}`
  let n = 0
  const tag = (): WriteTag => ({ w: cluster.id, s: start, n: ++n })
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]
  const shared = Array.from({ length: w.keys }, (_, j) => `k${j}`)
  const own = Array.from({ length: w.ownKeys }, (_, j) => `${cluster.id}.${j}`)
  const everyKey = w.nodes.flatMap(id => Array.from({ length: w.ownKeys }, (_, j) => `${id}.${j}`))
  const paused = async (): Promise<void> => { await sleep(w.gapMs, undefined, { signal: stop }).catch(() => {}) }

  const writer = async (): Promise<void> => {
    let steps = 0
    while (!stop.aborted) {
      steps++
      const key = pick(shared)
      const held = rep.get(key)
      report({ type: 'cache-read', workload, cache: w.replicated, key, value: isTag(held) ? held : null })
      const t = tag()
      if (steps % w.deleteEvery === 0) {
        report({ type: 'cache-write', workload, cache: w.replicated, key, op: 'delete', tag: t })
        await rep.delete(key)
      } else {
        report({ type: 'cache-write', workload, cache: w.replicated, key, op: 'set', tag: t })
        await rep.set(key, t)
      }
      const mine = pick(own)
      const version = await dbRead(w.dbDir, mine) + 1
      await dbWrite(w.dbDir, mine, version, start)
      report({ type: 'inv-write', workload, cache: w.invalidation, key: mine, version })
      // Both ways of invalidating: a set keeps the new value here, a delete makes the next read here load it.
      if (version % 2 === 0) await inv.set(mine, version)
      else await inv.delete(mine)
      await paused()
    }
  }
  const reader = async (): Promise<void> => {
    while (!stop.aborted) {
      const key = pick(everyKey)
      const startedAt = machineNow()
      const version = await inv.getOrLoad(key, async k => {
        const v = await dbRead(w.dbDir, k)
        await sleep(w.loadMs)
        return v
      })
      report({ type: 'inv-read', workload, cache: w.invalidation, key, version, startedAt })
      await paused()
    }
  }
  try {
    await Promise.all([writer(), ...Array.from({ length: w.readers }, reader)])
  } finally {
    rep.off('change', onRep)
    inv.off('change', onInv)
  }
  report({ type: 'workload-done', workload, grants: n })
}

/** The replicated cache's entries on this node, sorted by key. */
export function cacheContents (cluster: Cluster, name: string): CacheContents {
  // Not filtered: a value that is no tag is for the checker to report.
  const entries = cluster.cache<string, WriteTag>(name, { mode: 'replicated' }).entries()
    .sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  return { entries }
}
