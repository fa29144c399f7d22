/**
 * One `redis-server` (Debian's) on 127.0.0.1 (or a network namespace's
 * address), for side-by-side benchmarks:
 * a free port, its own temporary directory, and one of two persistence
 * settings:
 *
 * - 'default': Redis's built-in defaults (RDB snapshots, `save 3600 1 300
 *   100 60 10000`; no append-only file). A write is acknowledged before it
 *   reaches the disk.
 * - 'always': `appendonly yes` + `appendfsync always`: every write is in
 *   the append-only file and fsynced before it is acknowledged, the
 *   durability raftmesh's log gives (an acked enqueue survives a crash).
 *
 * Only the process this module spawned is ever signalled, by its own
 * process object.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../testkit/local-cluster.js'
import { LOOPBACK, placedCommand, type Placement } from '../testkit/placement.js'
import { waitFor } from './transport.js'

export type RedisPersistence = 'default' | 'always'

export function redisAvailable (): boolean {
  return spawnSync('redis-server', ['--version']).status === 0
}

/** The first line of `redis-server --version`. */
export function redisVersion (): string {
  return spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? ''
}

/** Sends one inline command and resolves with the first line of the reply. */
async function command (host: string, port: number, cmd: string, timeoutMs = 1000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = createConnection({ host, port })
    let out = ''
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`redis ${cmd}: no answer within ${timeoutMs} ms`)) }, timeoutMs)
    s.setEncoding('utf8')
    s.once('error', err => { clearTimeout(timer); reject(err) })
    s.on('data', (d: string) => {
      out += d
      if (!out.includes('\r\n')) return
      clearTimeout(timer)
      s.end()
      resolve(out.split('\r\n')[0])
    })
    s.write(`${cmd}\r\n`)
  })
}

export class RedisServer {
  private exited: Promise<void>

  private constructor (readonly host: string, readonly port: number, readonly dir: string, readonly persistence: RedisPersistence, private readonly proc: ChildProcess) {
    this.exited = new Promise(resolve => { proc.once('exit', () => { resolve() }) })
  }

  /**
   * `placement`: where the server runs (testkit/placement.ts), listening on
   * its host's address; this process must be able to reach that address
   * (a NetnsLab with `clientLinks`).
   */
  static async start (persistence: RedisPersistence, placement: Placement = LOOPBACK): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), 'raftmesh-redis-'))
    const port = await freePort()
    const host = placement.host
    const args = ['--port', String(port), '--bind', host, '--dir', dir, '--daemonize', 'no', '--logfile', join(dir, 'redis.log'),
      // BullMQ refuses to run on a server that may evict its keys.
      '--maxmemory-policy', 'noeviction']
    if (persistence === 'always') args.push('--appendonly', 'yes', '--appendfsync', 'always')
    // Off loopback Redis refuses every client unless told otherwise; a lab's namespace is reachable from this machine only.
    if (host !== '127.0.0.1') args.push('--protected-mode', 'no')
    const proc = spawn(...placedCommand(placement, 'redis-server', args), { stdio: 'ignore' })
    const server = new RedisServer(host, port, dir, persistence, proc)
    try {
      await waitFor(`redis-server on ${host}:${port}`, async () => await command(host, port, 'PING').then(r => r === '+PONG', () => false), 10_000, 50)
      const aof = await command(host, port, 'CONFIG GET appendfsync')
      if (aof.startsWith('-')) throw new Error(`redis CONFIG GET answered ${aof}`)
    } catch (err) {
      await server.stop()
      throw err
    }
    return server
  }

  get url (): string {
    return `redis://${this.host}:${this.port}`
  }

  /** The pid of the server process (for the report). */
  get pid (): number {
    return this.proc.pid ?? -1
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  async stop (): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM')
      let timer: NodeJS.Timeout | undefined
      const late = await Promise.race([this.exited.then(() => false), new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, 5000) })])
      clearTimeout(timer)
      if (late) {
        this.proc.kill('SIGKILL')
        await this.exited
      }
    }
    await rm(this.dir, { recursive: true, force: true })
  }
}
