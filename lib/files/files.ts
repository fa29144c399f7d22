/**
 * `cluster.files`: a small replicated store on the coordination log for
 * configuration and resources every node must share (OpenMRS keeps such
 * data in its application-data folder). A write resolves once committed and
 * applied on this node; reads come from this node's applied state, so a
 * node reads its own writes and sees others' as soon as it applies them.
 * A node that joins late gets every file with the log or its snapshot.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { fromString } from 'uint8arrays'
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'
import type { CommandBatcher } from '../batcher.js'
import { MAX_FILE_BYTES, pathProblem, type StoredFile } from '../coordination/file-table.js'
import type { SingleCommand } from '../coordination/commands.js'
import type { CoordinationState } from '../coordination/state.js'
import { ClusterStoppedError, FileTooLargeError, FileStoreFullError, InvalidArgumentError, SessionLostError } from '../errors.js'
import type { SessionKeeper } from '../session.js'

export interface FileInfo {
  readonly path: string
  readonly size: number
  /** Log index of the last change: larger after every change. */
  readonly version: bigint
  /** Leader-stamped wall-clock time of the last change. */
  readonly modifiedAt: number
  /** The node that wrote it. */
  readonly node: string
}

export interface FileChange {
  readonly path: string
  readonly op: 'put' | 'delete'
  readonly version: bigint
}

/** Keeps a local folder equal to the files under a prefix; stop it with `stop()`. */
export interface FileMirror {
  /** Resolves once every file present when it started is written. */
  readonly ready: Promise<void>
  stop(): void
}

export interface FilesOptions {
  readonly state: CoordinationState
  readonly batcher: CommandBatcher
  readonly keeper: SessionKeeper
  readonly log: Logger
  readonly isStopped: () => boolean
}

export class Files {
  private readonly o: FilesOptions

  constructor (o: FilesOptions) {
    this.o = o
  }

  /** Creates or replaces `path`; resolves with the new version once applied here. */
  async put (path: string, data: Uint8Array | string, opts: { signal?: AbortSignal } = {}): Promise<bigint> {
    checkPath(path)
    const bytes = typeof data === 'string' ? fromString(data) : data
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('file data must be a Uint8Array or a string')
    if (bytes.byteLength > MAX_FILE_BYTES) throw new FileTooLargeError(`${path} is ${bytes.byteLength} bytes (limit ${MAX_FILE_BYTES})`)
    const value = await this.send({ op: 'file-put', path, data: bytes }, opts)
    return BigInt((value as { version: number }).version)
  }

  /** The file's contents on this node, or null. */
  async get (path: string): Promise<Uint8Array | null> {
    checkPath(path)
    return this.o.state.files.get(path)?.data ?? null
  }

  async stat (path: string): Promise<FileInfo | null> {
    checkPath(path)
    const f = this.o.state.files.get(path)
    return f === undefined ? null : info(f)
  }

  /** Files whose path starts with `prefix`, sorted by path. */
  async list (prefix = ''): Promise<FileInfo[]> {
    return this.o.state.files.list(prefix).map(info)
  }

  /** Removes `path`; resolves true if it existed. */
  async delete (path: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    checkPath(path)
    const value = await this.send({ op: 'file-delete', path }, opts)
    return (value as { existed: boolean }).existed
  }

  /** Calls `fn` for every change (by any node) under `prefix`, in log order, as this node applies it. Returns the unsubscribe. */
  watch (prefix: string, fn: (change: FileChange) => void): () => void {
    const listener = (c: { path: string, op: 'put' | 'delete', version: number }): void => {
      if (!c.path.startsWith(prefix)) return
      try {
        fn({ path: c.path, op: c.op, version: BigInt(c.version) })
      } catch (err) {
        this.o.log.warn({ path: c.path, ...errorFields(err) }, 'a file watcher threw')
      }
    }
    this.o.state.files.on('changed', listener)
    return () => { this.o.state.files.off('changed', listener) }
  }

  /**
   * Mirrors the files under `prefix` into the folder `dir` (path minus
   * prefix), now and on every change: each file is written to a temporary
   * name and renamed over the old one, so a reader never sees half a file.
   */
  mirror (prefix: string, dir: string): FileMirror {
    const root = resolve(dir)
    let chain: Promise<void> = mkdir(root, { recursive: true }).then(() => {})
    let stopped = false
    const apply = (path: string): void => {
      chain = chain.then(async () => {
        if (stopped) return
        const target = resolve(root, path.slice(prefix.length))
        if (!target.startsWith(root + sep)) return
        const f = this.o.state.files.get(path)
        if (f === undefined) {
          await rm(target, { force: true })
          return
        }
        await mkdir(dirname(target), { recursive: true })
        const tmp = join(dirname(target), `.${process.pid}.${f.version}.tmp`)
        await writeFile(tmp, f.data)
        await rename(tmp, target)
      }).catch((err: unknown) => { this.o.log.warn({ path, dir: root, ...errorFields(err) }, 'could not mirror a file') })
    }
    const off = this.watch(prefix, c => { apply(c.path) })
    for (const f of this.o.state.files.list(prefix)) apply(f.path)
    const ready = chain
    return { ready, stop: () => { stopped = true; off() } }
  }

  private async send (cmd: SingleCommand, opts: { signal?: AbortSignal }): Promise<unknown> {
    for (;;) {
      if (this.o.isStopped()) throw new ClusterStoppedError()
      opts.signal?.throwIfAborted()
      const session = await this.o.keeper.ensure({ signal: opts.signal })
      const { result } = await this.o.batcher.submit(session, cmd)
      if (result.ok) return result.value
      if (result.error === 'no-session') continue
      if (result.error === 'full') throw new FileStoreFullError(result.message)
      if (result.error === 'invalid') throw new InvalidArgumentError(result.message)
      throw new SessionLostError(result.message)
    }
  }
}

function checkPath (path: string): void {
  const bad = pathProblem(path)
  if (bad !== null) throw new InvalidArgumentError(`${bad}: ${JSON.stringify(path)?.slice(0, 80)}`)
}

function info (f: StoredFile): FileInfo {
  return { path: f.path, size: f.data.byteLength, version: BigInt(f.version), modifiedAt: f.modifiedAt, node: f.node }
}
