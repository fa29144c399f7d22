/**
 * The floor under a three-node commit on this machine, with none of our
 * code: a leader process and two follower processes over plain TCP on
 * loopback. Each round the leader sends 300 bytes to both followers and
 * appends them to its own file; each follower appends and fdatasyncs, then
 * answers. A round commits once the leader's own flush and one follower's
 * answer are in, as a Raft commit would. Prints the commits' p50, p99 and max.
 *
 *   node --import tsx bench/probes/commit-floor.ts [commits]
 * INLINE=1 flushes on the event loop (fdatasyncSync) instead of the thread pool.
 */
import { fork } from 'node:child_process'
import { fdatasync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Latency } from '../latency.js'

const INLINE = process.env.INLINE === '1'
const record = Buffer.alloc(300, 7)

function durable (fd: number, done: () => void): void {
  writeSync(fd, record)
  if (INLINE) {
    fdatasyncSync(fd)
    done()
  } else {
    fdatasync(fd, err => { if (err !== null) throw err; done() })
  }
}

if (process.argv[2] === 'follower') {
  const fd = openSync(join(process.argv[3], 'follower.log'), 'w')
  const server = createServer(s => {
    s.setNoDelay(true)
    // The leader resets the connection when it is done.
    s.on('error', () => {})
    s.on('data', d => { durable(fd, () => s.write(d.subarray(0, 8))) })
  })
  server.listen(0, '127.0.0.1', () => { process.send?.((server.address() as AddressInfo).port) })
} else {
  const commits = Number(process.argv[2] ?? 3000)
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'commit-floor-')))
  const self = fileURLToPath(import.meta.url)
  const followers = dirs.slice(1).map(d => fork(self, ['follower', d]))
  try {
    const ports = await Promise.all(followers.map(async f => await new Promise<number>(resolve => f.once('message', p => { resolve(p as number) }))))
    const socks = await Promise.all(ports.map(async p => await new Promise<Socket>(resolve => {
      const s = createConnection(p, '127.0.0.1', () => { s.setNoDelay(true); resolve(s) })
    })))
    const fd = openSync(join(dirs[0], 'leader.log'), 'w')
    let onAck: (() => void) | null = null
    for (const s of socks) s.on('data', () => { onAck?.() })
    const latency = new Latency()
    for (let i = 0; i < commits; i++) {
      const t0 = performance.now()
      await new Promise<void>(resolve => {
        let own = false
        let acks = 0
        const check = (): void => { if (own && acks >= 1) { onAck = null; resolve() } }
        onAck = () => { acks++; check() }
        const msg = Buffer.alloc(300, i & 255)
        for (const s of socks) s.write(msg)
        durable(fd, () => { own = true; check() })
      })
      latency.record(performance.now() - t0)
    }
    for (const s of socks) s.destroy()
    console.log(JSON.stringify({ inline: INLINE, ...latency.summary() }))
  } finally {
    for (const f of followers) f.kill()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}
