/**
 * A simulated disk under the real FileLogStore and snapshot files, with the
 * durability rules of a POSIX file system and nothing more generous:
 * - written bytes live in the page cache until their file is synced; a
 *   crash loses them, except that a prefix of the unsynced writes may have
 *   reached the platter, the last of them torn at any byte;
 * - a created, renamed or deleted name survives a crash only once its
 *   directory is synced;
 * - an fsync takes simulated time, and a crash during it loses its data.
 *
 * Every storage call is a persist point at which the simulator may crash the
 * node (see {@link DiskHooks}). A crashed incarnation's view of the disk
 * goes dead: its calls never settle, as in a process that no longer exists.
 */
import { basename, dirname } from 'node:path'
import type { FileSystem, OpenMode, StoreFile } from '../raft/storage/file-system.js'
import type { Prng } from './prng.js'

/** Where a storage call may be cut short by a crash. */
export type PersistPoint =
  | 'wal-write' | 'wal-fsync' | 'wal-fsynced'
  | 'segment-create' | 'segment-dirsync'
  | 'snapshot-write' | 'snapshot-fsync' | 'snapshot-rename' | 'snapshot-dirsync'
  | 'compaction-unlink' | 'torn-tail-truncate'

/** What the simulator does at persist points. */
export interface DiskHooks {
  /** Asked at every persist point of a live incarnation; true when the node crashed right there. */
  crashAt(point: PersistPoint): boolean
  /** Runs `fn` once an fsync's (simulated) latency has passed. */
  afterFsync(fn: () => void): void
}

/** A growable byte array. */
class Bytes {
  private buf: Uint8Array
  length: number

  constructor (from?: Bytes) {
    this.buf = from === undefined ? new Uint8Array(256) : from.buf.slice(0, Math.max(256, from.length))
    this.length = from?.length ?? 0
  }

  write (position: number, bytes: Uint8Array): void {
    const end = position + bytes.length
    this.grow(end)
    this.buf.set(bytes, position)
    this.length = Math.max(this.length, end)
  }

  truncate (length: number): void {
    this.grow(length)
    // Bytes past the new end must read as zeros if the file grows again.
    if (length < this.length) this.buf.fill(0, length, this.length)
    this.length = length
  }

  view (): Uint8Array {
    return this.buf.subarray(0, this.length)
  }

  private grow (size: number): void {
    if (size <= this.buf.length) return
    const next = new Uint8Array(Math.max(size, this.buf.length * 2))
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
  }
}

type Op = { readonly kind: 'write', readonly position: number, readonly bytes: Uint8Array } | { readonly kind: 'truncate', readonly length: number }

class Inode {
  /** What reads see (the page cache). */
  data = new Bytes()
  /** What survives a crash. */
  durable = new Bytes()
  /** Changes made to `data` since the last sync, oldest first. */
  pending: Op[] = []

  apply (op: Op): void {
    this.data = applyOp(this.data, op)
    this.pending.push(op)
  }

  /** Makes the first `n` pending changes durable. */
  settle (n: number): void {
    for (const op of this.pending.splice(0, n)) this.durable = applyOp(this.durable, op)
  }
}

function applyOp (b: Bytes, op: Op): Bytes {
  if (op.kind === 'write') b.write(op.position, op.bytes)
  else b.truncate(op.length)
  return b
}

function fsError (code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code })
}

/** Never settles: the caller's process is gone. */
function never<T> (): Promise<T> {
  return new Promise<T>(() => {})
}

/** One node's disk; it outlives the node's incarnations. */
export class SimDisk {
  private names = new Map<string, Inode>()
  private durableNames = new Map<string, Inode>()
  private readonly dirs = new Set<string>()
  /** Crashes that kept a torn prefix of some unsynced write. */
  tornWrites = 0

  /**
   * The disk as an incarnation sees it: dead (never settling) once `alive`
   * turns false.
   */
  view (hooks: DiskHooks, alive: () => boolean): FileSystem {
    return new SimFileSystem(this, hooks, alive)
  }

  /** Power loss: everything not synced is lost, but for a possibly torn prefix of the unsynced writes. */
  crash (rng: Prng): void {
    const inodes = new Set([...this.names.values(), ...this.durableNames.values()])
    for (const inode of inodes) {
      if (inode.pending.length > 0 && rng.chance(0.5)) {
        const keep = rng.int(1, inode.pending.length)
        inode.settle(keep - 1)
        const last = inode.pending[0]
        if (last.kind === 'write') {
          const cut = rng.int(0, last.bytes.length)
          if (cut < last.bytes.length) this.tornWrites++
          inode.durable.write(last.position, last.bytes.subarray(0, cut))
        } else {
          inode.durable.truncate(last.length)
        }
      }
      inode.pending = []
      inode.data = new Bytes(inode.durable)
    }
    this.names = new Map(this.durableNames)
  }

  /** @internal for SimFileSystem */
  lookup (path: string): Inode | undefined {
    return this.names.get(path)
  }

  /** @internal */
  link (path: string, inode: Inode | undefined): void {
    if (inode === undefined) this.names.delete(path)
    else this.names.set(path, inode)
  }

  /** @internal */
  mkdir (dir: string): void {
    this.dirs.add(dir)
  }

  /** @internal */
  list (dir: string): string[] {
    if (!this.dirs.has(dir)) throw fsError('ENOENT', dir)
    return [...this.names.keys()].filter(p => dirname(p) === dir).map(p => basename(p)).sort()
  }

  /** @internal: makes the directory's current names durable. */
  syncDir (dir: string): void {
    for (const path of new Set([...this.names.keys(), ...this.durableNames.keys()])) {
      if (dirname(path) !== dir) continue
      const inode = this.names.get(path)
      if (inode === undefined) this.durableNames.delete(path)
      else this.durableNames.set(path, inode)
    }
  }
}

class SimFileSystem implements FileSystem {
  /** Which kind of change the next directory sync makes durable, to name the persist point. */
  private dirChange: 'segment-dirsync' | 'snapshot-dirsync' = 'segment-dirsync'

  constructor (private readonly disk: SimDisk, readonly hooks: DiskHooks, readonly alive: () => boolean) {}

  /** True when the call may go on: the node lives and was not crashed at `point`. */
  proceed (point?: PersistPoint): boolean {
    if (!this.alive()) return false
    return point === undefined || !this.hooks.crashAt(point)
  }

  async mkdir (dir: string): Promise<void> {
    if (!this.proceed()) return await never()
    this.disk.mkdir(dir)
  }

  async readdir (dir: string): Promise<string[]> {
    if (!this.proceed()) return await never()
    return this.disk.list(dir)
  }

  async readFile (path: string): Promise<Uint8Array> {
    if (!this.proceed()) return await never()
    const inode = this.disk.lookup(path)
    if (inode === undefined) throw fsError('ENOENT', path)
    return inode.data.view().slice()
  }

  async open (path: string, mode: OpenMode): Promise<StoreFile> {
    const wal = isWal(path)
    if (!this.proceed(wal && mode === 'wx' ? 'segment-create' : undefined)) return await never()
    let inode = this.disk.lookup(path)
    if (mode === 'wx' && inode !== undefined) throw fsError('EEXIST', path)
    if (mode === 'r+' && inode === undefined) throw fsError('ENOENT', path)
    if (inode === undefined) {
      inode = new Inode()
      this.disk.link(path, inode)
    } else if (mode === 'w') {
      inode.apply({ kind: 'truncate', length: 0 })
    }
    if (mode !== 'r+') this.dirChange = wal ? 'segment-dirsync' : 'snapshot-dirsync'
    return new SimFile(this, inode, wal)
  }

  async rename (from: string, to: string): Promise<void> {
    if (!this.proceed('snapshot-rename')) return await never()
    const inode = this.disk.lookup(from)
    if (inode === undefined) throw fsError('ENOENT', from)
    this.disk.link(to, inode)
    this.disk.link(from, undefined)
    this.dirChange = 'snapshot-dirsync'
  }

  async unlink (path: string): Promise<void> {
    if (!this.proceed('compaction-unlink')) return await never()
    if (this.disk.lookup(path) === undefined) throw fsError('ENOENT', path)
    this.disk.link(path, undefined)
  }

  async syncDir (dir: string): Promise<void> {
    if (!this.proceed(this.dirChange)) return await never()
    await this.fsyncDelay()
    this.disk.syncDir(dir)
  }

  /** Waits out an fsync's latency; never returns if the node died meanwhile. */
  async fsyncDelay (): Promise<void> {
    await new Promise<void>(resolve => { this.hooks.afterFsync(resolve) })
    if (!this.alive()) await never()
  }
}

class SimFile implements StoreFile {
  constructor (private readonly fs: SimFileSystem, private readonly inode: Inode, private readonly wal: boolean) {}

  async size (): Promise<number> {
    if (!this.fs.proceed()) return await never()
    return this.inode.data.length
  }

  writeSync (bytes: Uint8Array, position: number): void {
    if (!this.fs.proceed(this.wal ? 'wal-write' : 'snapshot-write')) return
    this.inode.apply({ kind: 'write', position, bytes: bytes.slice() })
  }

  async write (bytes: Uint8Array, position: number): Promise<void> {
    this.writeSync(bytes, position)
    if (!this.fs.alive()) await never()
  }

  async truncate (length: number): Promise<void> {
    if (!this.fs.proceed('torn-tail-truncate')) return await never()
    this.inode.apply({ kind: 'truncate', length })
  }

  async sync (): Promise<void> {
    await this.datasync()
  }

  async datasync (): Promise<void> {
    if (!this.fs.proceed(this.wal ? 'wal-fsync' : 'snapshot-fsync')) return await never()
    // What an fsync flushes is what was written before it was called.
    const n = this.inode.pending.length
    await this.fs.fsyncDelay()
    this.inode.settle(n)
    // Durable now, but the caller has not learnt it: nothing it would send next goes out.
    if (this.wal && !this.fs.proceed('wal-fsynced')) await never()
  }

  datasyncSync (): void {
    if (!this.fs.proceed(this.wal ? 'wal-fsync' : 'snapshot-fsync')) return
    this.inode.settle(this.inode.pending.length)
  }

  async close (): Promise<void> {
    if (!this.fs.proceed()) await never()
  }
}

function isWal (path: string): boolean {
  return basename(path).startsWith('wal-')
}
