/**
 * The simulated disk keeps no more than a real one would: the simulator's
 * crash tests are only as strict as these rules.
 */
import t from 'tap'
import { Prng } from '../sim/prng.js'
import { SimDisk, type PersistPoint } from '../sim/sim-disk.js'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array): string => new TextDecoder().decode(b)

/** A disk whose fsyncs complete at once and whose persist points never crash, unless `crashAt` says so. */
function disk (crashAt: (point: PersistPoint) => boolean = () => false): { disk: SimDisk, fs: ReturnType<SimDisk['view']>, points: PersistPoint[] } {
  const d = new SimDisk()
  const points: PersistPoint[] = []
  const fs = d.view({ crashAt: p => { points.push(p); return crashAt(p) }, afterFsync: fn => { queueMicrotask(fn) } }, () => true)
  return { disk: d, fs, points }
}

/** Power loss, with a fixed seed for what of the unsynced writes survives. */
const crash = (d: SimDisk): void => { d.crash(new Prng(1)) }

t.test('written but not synced is lost in a crash; synced survives', async t => {
  const { disk: d, fs } = disk()
  await fs.mkdir('/d')
  const f = await fs.open('/d/wal-0000000000000001.log', 'wx')
  await fs.syncDir('/d')
  f.writeSync(bytes('synced'), 0)
  await f.datasync()
  f.writeSync(bytes('-lost'), 6)
  t.equal(text(await fs.readFile('/d/wal-0000000000000001.log')), 'synced-lost', 'reads see the page cache')
  crash(d)
  const after = text(await fs.readFile('/d/wal-0000000000000001.log'))
  t.ok(after.startsWith('synced') && 'synced-lost'.startsWith(after), `the synced bytes, at most a prefix of the rest (${after})`)
})

t.test('a new or renamed name survives only once its directory is synced', async t => {
  const { disk: d, fs } = disk()
  await fs.mkdir('/d')
  const f = await fs.open('/d/snap-0000000000000001.bin.tmp', 'w')
  await f.write(bytes('snapshot'), 0)
  await f.sync()
  await fs.rename('/d/snap-0000000000000001.bin.tmp', '/d/snap-0000000000000001.bin')
  crash(d)
  t.same(await fs.readdir('/d'), [], 'neither name was durable')

  const g = await fs.open('/d/snap-0000000000000002.bin', 'w')
  await g.write(bytes('snapshot'), 0)
  await g.sync()
  await fs.syncDir('/d')
  crash(d)
  t.same(await fs.readdir('/d'), ['snap-0000000000000002.bin'])
  t.equal(text(await fs.readFile('/d/snap-0000000000000002.bin')), 'snapshot')
})

t.test('over many crashes, unsynced appends survive only as a prefix, sometimes torn', async t => {
  let torn = 0
  for (let seed = 1; seed <= 200; seed++) {
    const { disk: d, fs } = disk()
    await fs.mkdir('/d')
    const f = await fs.open('/d/wal-0000000000000001.log', 'wx')
    await fs.syncDir('/d')
    f.writeSync(bytes('aaaa'), 0)
    await f.datasync()
    f.writeSync(bytes('bbbb'), 4)
    f.writeSync(bytes('cccc'), 8)
    d.crash(new Prng(seed))
    const after = text(await fs.readFile('/d/wal-0000000000000001.log'))
    if (!after.startsWith('aaaa') || !'aaaabbbbcccc'.startsWith(after)) t.fail(`seed ${seed}: ${after}`)
    if (after.length % 4 !== 0) torn++
  }
  t.ok(torn > 0, `some crashes tore a write (${torn} of 200)`)
})

t.test('a crash at a persist point leaves the call unsettled', async t => {
  const { fs, points } = disk(p => p === 'wal-fsync')
  await fs.mkdir('/d')
  const f = await fs.open('/d/wal-0000000000000001.log', 'wx')
  await fs.syncDir('/d')
  f.writeSync(bytes('x'), 0)
  let settled = false
  void f.datasync().finally(() => { settled = true })
  await new Promise(resolve => setImmediate(resolve))
  t.notOk(settled, 'the fsync never returns to a process that died in it')
  t.same(points, ['segment-create', 'segment-dirsync', 'wal-write', 'wal-fsync'], 'each call was a persist point, named for what it does')
})
