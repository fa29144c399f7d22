/**
 * A small replicated file store on the coordination log, for configuration
 * and resources every node must see the same: whole files replaced by
 * `put`, removed by `delete`, each with the log index of its last change as
 * version. Size limits keep snapshots (which carry every file) small.
 */
import { EventEmitter } from 'node:events'

/** Largest file the store accepts. */
export const MAX_FILE_BYTES = 256 * 1024
/** All files together. */
export const MAX_TOTAL_FILE_BYTES = 64 * 1024 * 1024
export const MAX_PATH_LENGTH = 512

export interface StoredFile {
  readonly path: string
  readonly data: Uint8Array
  readonly version: number
  readonly modifiedAt: number
  readonly node: string
}

export interface FileEvents {
  changed: [{ path: string, op: 'put' | 'delete', version: number }]
}

export type FileOpResult = { readonly ok: true, readonly value?: unknown } | { readonly ok: false, readonly error: 'full' | 'invalid', readonly message: string }

/** A relative POSIX path of non-empty segments, none of them `.` or `..`; the reason it is not, or null. */
export function pathProblem (path: string): string | null {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LENGTH) return `a path is 1-${MAX_PATH_LENGTH} characters`
  if (path.startsWith('/') || path.endsWith('/')) return 'a path neither starts nor ends with /'
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\\]/.test(path)) return 'a path has no control characters or backslashes'
  if (path.split('/').some(seg => seg === '' || seg === '.' || seg === '..')) return 'a path has no empty, . or .. segments'
  return null
}

export class FileTable extends EventEmitter<FileEvents> {
  private files = new Map<string, StoredFile>()
  private bytes = 0

  get totalBytes (): number {
    return this.bytes
  }

  get (path: string): StoredFile | undefined {
    return this.files.get(path)
  }

  /** Files whose path starts with `prefix`, sorted by path. */
  list (prefix = ''): StoredFile[] {
    return [...this.files.values()].filter(f => f.path.startsWith(prefix)).sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
  }

  put (path: string, data: Uint8Array, ctx: { index: number, stamp: number, node: string }): FileOpResult {
    const bad = pathProblem(path)
    if (bad !== null) return { ok: false, error: 'invalid', message: `${bad}: ${JSON.stringify(path).slice(0, 80)}` }
    const old = this.files.get(path)
    const total = this.bytes - (old?.data.byteLength ?? 0) + data.byteLength
    if (total > MAX_TOTAL_FILE_BYTES) return { ok: false, error: 'full', message: `the file store would hold ${total} bytes (limit ${MAX_TOTAL_FILE_BYTES})` }
    this.bytes = total
    this.files.set(path, { path, data, version: ctx.index, modifiedAt: ctx.stamp, node: ctx.node })
    this.emit('changed', { path, op: 'put', version: ctx.index })
    return { ok: true, value: { version: ctx.index } }
  }

  delete (path: string, ctx: { index: number }): FileOpResult {
    const old = this.files.get(path)
    if (old === undefined) return { ok: true, value: { existed: false } }
    this.files.delete(path)
    this.bytes -= old.data.byteLength
    this.emit('changed', { path, op: 'delete', version: ctx.index })
    return { ok: true, value: { existed: true } }
  }

  toJSON (): StoredFile[] {
    return [...this.files.values()]
  }

  restore (raw: StoredFile[]): void {
    this.files = new Map(raw.map(f => [f.path, f]))
    this.bytes = raw.reduce((n, f) => n + f.data.byteLength, 0)
  }
}
