/**
 * Real network partitions for processes on one machine, with Linux network
 * namespaces (needs root and iproute2's `ip`).
 *
 * Each host gets a namespace of its own, joined by a veth pair to a hub
 * namespace where the hub-side ends hang on bridges. A partition moves the
 * hub-side ends of each side onto a bridge of that side's own, so packets
 * between sides are simply not delivered: connections across the cut go
 * silent, as on a real network (no reset, no refusal), and new ones time
 * out. `heal` puts every end back on the first bridge. Nothing touches the
 * machine's own namespace unless `hostLink` asks for one veth from it to
 * the hub (so a browser or HTTP client here can reach the hosts; it stays
 * on the first side of a partition), or `clientLinks` for one veth from it
 * straight to each host, outside the hub (so clients here reach every host
 * whatever the partition, as a load balancer on another network would, and
 * a client of the minority side meets what a real one meets there).
 *
 * All names carry this process's pid, and `create` first removes what a
 * dead process of an earlier run left behind, so a crash leaks nothing for
 * long.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Placement } from './placement.js'

const run = promisify(execFile)
const PREFIX = 'rmx'
/**
 * The hosts' addresses are 10.231.X.1, .2, ...: every lab has its own hub, so
 * labs never see each other's; only a lab with a host link needs an X no
 * other route here uses.
 */
const NET = '10.231'

export interface NetnsLabOptions {
  /** Number of hosts (1-200). */
  readonly hosts: number
  /** Also link this machine's namespace to the hub (at 10.231.X.254), for clients running here. */
  readonly hostLink?: boolean
  /**
   * Instead, link this machine's namespace to each host directly (this end
   * 10.231.X.254 on every link, a /32 route to each host): partitions cut
   * the hosts from each other, never from here.
   */
  readonly clientLinks?: boolean
}

export interface NetnsHost {
  /** Namespace name, for `ip netns exec`. */
  readonly ns: string
  /** The host's IPv4 address inside the lab. */
  readonly addr: string
}

/** True when this process may build a lab: root, with `ip` on the PATH. */
export async function netnsAvailable (): Promise<boolean> {
  if (process.getuid?.() !== 0) return false
  try {
    await run('ip', ['netns', 'list'])
    return true
  } catch {
    return false
  }
}

async function ip (...args: string[]): Promise<void> {
  await run('ip', args)
}

async function inNs (ns: string, ...args: string[]): Promise<void> {
  await run('ip', ['-n', ns, ...args])
}

export class NetnsLab {
  readonly hosts: readonly NetnsHost[]
  /** Address of this machine's end of the host link, when there is one. */
  readonly hostAddr: string | null
  private readonly hub: string
  private readonly tag: string
  private bridges = 1
  private destroyed = false

  private constructor (tag: string, hosts: NetnsHost[], hostAddr: string | null, private readonly clientLinks: boolean) {
    this.tag = tag
    this.hub = `${tag}h`
    this.hosts = hosts
    this.hostAddr = hostAddr
  }

  /** Builds the hub and one namespace per host, all on one bridge (no partition). */
  static async create (opts: NetnsLabOptions): Promise<NetnsLab> {
    if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 200) throw new RangeError(`hosts must be an integer from 1 to 200, got ${opts.hosts}`)
    if (opts.hostLink === true && opts.clientLinks === true) throw new RangeError('hostLink and clientLinks both take 10.231.X.254 here: ask for one')
    await removeStale()
    const tag = `${PREFIX}${process.pid}${labCounter()}`
    const linked = opts.hostLink === true || opts.clientLinks === true
    const subnet = `${NET}.${linked ? await freeSubnet() : 1}`
    const hosts = Array.from({ length: opts.hosts }, (_, i) => ({ ns: `${tag}n${i + 1}`, addr: `${subnet}.${i + 1}` }))
    const lab = new NetnsLab(tag, hosts, linked ? `${subnet}.254` : null, opts.clientLinks === true)
    try {
      await lab.build()
    } catch (err) {
      await lab.destroy()
      throw err
    }
    return lab
  }

  /** The command prefix that runs a program inside host `i`'s namespace. */
  exec (i: number): string[] {
    return ['ip', 'netns', 'exec', this.host(i).ns]
  }

  /** Where a launcher puts a child that runs as host `i`: its namespace, listening on its address. */
  placement (i: number): Placement {
    return { host: this.host(i).addr, wrap: this.exec(i) }
  }

  /**
   * Cuts the lab into `groups` (host indexes): hosts in one group reach each
   * other and nobody else; a host in no group is cut off alone. The host
   * link, if any, stays with the first group; client links are not cut.
   */
  async partition (groups: ReadonlyArray<readonly number[]>): Promise<void> {
    const seen = new Set<number>()
    for (const g of groups) {
      for (const i of g) {
        this.host(i)
        if (seen.has(i)) throw new RangeError(`host ${i} is in two groups`)
        seen.add(i)
      }
    }
    const sides = [...groups.map(g => [...g]), ...this.hosts.map((_, i) => i).filter(i => !seen.has(i)).map(i => [i])]
    while (this.bridges < sides.length) await this.addBridge(this.bridges++)
    for (const [b, side] of sides.entries()) {
      for (const i of side) await inNs(this.hub, 'link', 'set', hubEnd(this.tag, i), 'master', `br${b}`)
    }
  }

  /** Every host back on the first bridge. */
  async heal (): Promise<void> {
    for (const i of this.hosts.keys()) await inNs(this.hub, 'link', 'set', hubEnd(this.tag, i), 'master', 'br0')
  }

  /** Deletes every namespace and link of the lab; safe to call twice. */
  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    if (this.hostAddr !== null && !this.clientLinks) await ip('link', 'del', `${this.tag}x`).catch(() => {})
    // A process still running in a host's namespace keeps it (and its link) alive past `netns del`: cut the links here.
    if (this.clientLinks) for (const i of this.hosts.keys()) await ip('link', 'del', `${this.tag}c${i}`).catch(() => {})
    // Deleting a namespace deletes the veth ends inside it, and so their peers.
    for (const ns of [this.hub, ...this.hosts.map(h => h.ns)]) await ip('netns', 'del', ns).catch(() => {})
  }

  private host (i: number): NetnsHost {
    const h = this.hosts[i]
    if (h === undefined) throw new RangeError(`no host ${i} (the lab has ${this.hosts.length})`)
    return h
  }

  private async addBridge (b: number): Promise<void> {
    await inNs(this.hub, 'link', 'add', `br${b}`, 'type', 'bridge')
    await inNs(this.hub, 'link', 'set', `br${b}`, 'up')
  }

  private async build (): Promise<void> {
    await ip('netns', 'add', this.hub)
    await inNs(this.hub, 'link', 'set', 'lo', 'up')
    await this.addBridge(0)
    for (const [i, h] of this.hosts.entries()) {
      await ip('netns', 'add', h.ns)
      await inNs(h.ns, 'link', 'set', 'lo', 'up')
      const inner = `${this.tag}i${i}`
      await ip('link', 'add', inner, 'netns', h.ns, 'type', 'veth', 'peer', 'name', hubEnd(this.tag, i), 'netns', this.hub)
      await inNs(h.ns, 'link', 'set', inner, 'name', 'eth0')
      await inNs(h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0')
      await inNs(h.ns, 'link', 'set', 'eth0', 'up')
      await inNs(this.hub, 'link', 'set', hubEnd(this.tag, i), 'master', 'br0')
      await inNs(this.hub, 'link', 'set', hubEnd(this.tag, i), 'up')
    }
    if (this.hostAddr !== null && this.clientLinks) {
      for (const [i, h] of this.hosts.entries()) {
        const here = `${this.tag}c${i}`
        await ip('link', 'add', here, 'type', 'veth', 'peer', 'name', `${this.tag}d${i}`, 'netns', h.ns)
        await inNs(h.ns, 'link', 'set', `${this.tag}d${i}`, 'name', 'eth1')
        await inNs(h.ns, 'link', 'set', 'eth1', 'up')
        // Replies to this machine leave by this link, not the hub's, so no partition reaches them.
        await inNs(h.ns, 'route', 'add', `${this.hostAddr}/32`, 'dev', 'eth1')
        await ip('addr', 'add', `${this.hostAddr}/32`, 'dev', here)
        await ip('link', 'set', here, 'up')
        await ip('route', 'add', `${h.addr}/32`, 'dev', here, 'src', this.hostAddr)
      }
    } else if (this.hostAddr !== null) {
      await ip('link', 'add', `${this.tag}x`, 'type', 'veth', 'peer', 'name', `${this.tag}y`, 'netns', this.hub)
      await ip('addr', 'add', `${this.hostAddr}/24`, 'dev', `${this.tag}x`)
      await ip('link', 'set', `${this.tag}x`, 'up')
      await inNs(this.hub, 'link', 'set', `${this.tag}y`, 'master', 'br0')
      await inNs(this.hub, 'link', 'set', `${this.tag}y`, 'up')
    }
  }
}

/** A third octet no route of this namespace uses yet. */
async function freeSubnet (): Promise<number> {
  const { stdout } = await run('ip', ['-4', 'route'])
  for (let x = 1; x <= 250; x++) if (!stdout.includes(`${NET}.${x}.`)) return x
  throw new Error(`every ${NET}.X.0/24 is in use here`)
}

function hubEnd (tag: string, i: number): string {
  return `${tag}o${i}`
}

let labs = 0
/** Several labs in one process get distinct names ("a", "b", ...). */
function labCounter (): string {
  return String.fromCharCode(97 + (labs++ % 26))
}

/** Namespaces (and host links) of earlier runs whose process is gone. */
async function removeStale (): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list'])
  const pattern = new RegExp(`^(${PREFIX}(\\d+)[a-z])[hn]`)
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0]
    const m = pattern.exec(name)
    if (m === null || processAlive(Number(m[2]))) continue
    await ip('netns', 'del', name).catch(() => {})
    await ip('link', 'del', `${m[1]}x`).catch(() => {})
  }
  const { stdout: links } = await run('ip', ['-o', 'link', 'show'])
  for (const m of links.matchAll(new RegExp(`^\\d+: (${PREFIX}(\\d+)[a-z]c\\d+)@`, 'gm'))) {
    if (!processAlive(Number(m[2]))) await ip('link', 'del', m[1]).catch(() => {})
  }
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
