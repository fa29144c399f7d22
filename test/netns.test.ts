/**
 * The network-namespace lab (testkit/netns.ts) that gives process tests
 * real partitions: hosts reach each other, a partition silently drops
 * traffic across the cut, heal restores it, and destroy leaves nothing.
 * Needs root and iproute2; skipped otherwise.
 */
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { NetnsLab, netnsAvailable } from '../testkit/netns.js'

const run = promisify(execFile)
const PORT = 7411

/** From host `from`, whether a TCP connection to `addr` opens within 1.5 s. */
async function reaches (lab: NetnsLab, from: number, addr: string): Promise<boolean> {
  const script = `const s = require('net').connect(${PORT}, '${addr}'); s.setTimeout(1500); s.on('connect', () => { process.stdout.write('open'); s.destroy() }); s.on('timeout', () => s.destroy()); s.on('error', () => {})`
  const [cmd, ...args] = lab.exec(from)
  const { stdout } = await run(cmd, [...args, process.execPath, '-e', script])
  return stdout === 'open'
}

const skip = await netnsAvailable() ? false : 'needs root and iproute2 (ip netns) for network namespaces'

t.test('a partition cuts hosts off from each other and heal joins them again', { skip }, async t => {
  const lab = await NetnsLab.create({ hosts: 3 })
  t.teardown(async () => { await lab.destroy() })
  const servers = lab.hosts.map((h, i) => {
    const [cmd, ...args] = lab.exec(i)
    return spawn(cmd, [...args, process.execPath, '-e', `require('net').createServer(s => s.end()).listen(${PORT}, '${h.addr}', () => process.stdout.write('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  })
  t.teardown(() => { for (const s of servers) s.kill('SIGKILL') })
  await Promise.all(servers.map(async s => { await new Promise(resolve => s.stdout?.once('data', resolve)) }))
  const [a, b, c] = lab.hosts.map(h => h.addr)

  t.ok(await reaches(lab, 0, c), 'whole: n1 reaches n3')
  await lab.partition([[0, 1]])
  t.ok(await reaches(lab, 0, b), 'n1 and n2 are on one side')
  t.notOk(await reaches(lab, 0, c), 'n1 does not reach n3 across the cut')
  t.notOk(await reaches(lab, 2, a), 'nor n3 n1')
  await lab.heal()
  t.ok(await reaches(lab, 2, a), 'healed: n3 reaches n1 again')
  await t.rejects(lab.partition([[0], [0, 1]]), RangeError, 'a host in two groups')
})

t.test('destroy removes every namespace the lab made', { skip }, async t => {
  const lab = await NetnsLab.create({ hosts: 2 })
  const names = [...lab.hosts.map(h => h.ns)]
  const listed = async (): Promise<string> => (await run('ip', ['netns', 'list'])).stdout
  t.ok((await listed()).includes(names[0]), 'the hosts exist while the lab does')
  await lab.destroy()
  const after = await listed()
  t.notOk(names.some(n => after.includes(n)), 'and are gone after destroy')
})
