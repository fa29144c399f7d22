/**
 * Preloaded into each kv-node process by `npm run bench -- cpu`
 * (`node --import tsx --import bench/procs/cpu-probe.ts examples/kv-node.ts`).
 * It lives outside the node's code so that any revision, including a
 * baseline that predates this benchmark, can be measured the same way.
 *
 * Answers IPC requests `{type: 'cpu-probe', id, op}`:
 * - `sample`: cumulative event-loop busy time, process CPU, fsync calls and
 *   bytes on the mesh's sockets; the benchmark subtracts two samples;
 * - `profile-start` / `profile-stop` (with `path`): the V8 CPU profiler
 *   through the inspector, writing the same .cpuprofile that `--cpu-prof`
 *   writes, but for a window the benchmark chooses on whichever process is
 *   leader then (`--cpu-prof` only writes at a clean exit).
 */
import fs from 'node:fs'
import { open } from 'node:fs/promises'
import { subscribe } from 'node:diagnostics_channel'
import { syncBuiltinESMExports } from 'node:module'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { CpuProfileWindow } from './cpu-profile-window.js'

export interface ProbeSample {
  /** Event-loop busy and idle time since start, ms. */
  readonly eluActiveMs: number
  readonly eluIdleMs: number
  /** Process CPU since start, µs (all threads, including libuv's and V8's). */
  readonly userUs: number
  readonly systemUs: number
  /** fsync and fdatasync calls, sync, callback and FileHandle. */
  readonly fsyncs: number
  /** Bytes written to and read from TCP sockets other than the HTTP API's: the mesh (Raft and gossip, encrypted and framed). */
  readonly meshBytesOut: number
  readonly meshBytesIn: number
}

let fsyncs = 0
const counted = <F extends (...args: any[]) => any>(f: F): F => function (this: unknown, ...args: unknown[]) {
  fsyncs++
  return f.apply(this, args)
} as F
fs.fdatasyncSync = counted(fs.fdatasyncSync)
fs.fsyncSync = counted(fs.fsyncSync)
fs.fdatasync = counted(fs.fdatasync)
fs.fsync = counted(fs.fsync)
// Named imports of node:fs (`import { fdatasyncSync }`) see the wrappers only after this.
syncBuiltinESMExports()
const handle = await open('/dev/null', 'r')
const FileHandleProto = Object.getPrototypeOf(handle) as { datasync: () => Promise<void>, sync: () => Promise<void> }
await handle.close()
FileHandleProto.datasync = counted(FileHandleProto.datasync)
FileHandleProto.sync = counted(FileHandleProto.sync)

// The HTTP API's port, so its sockets are left out of the mesh's bytes.
const httpArg = process.argv[process.argv.indexOf('--http') + 1] ?? ''
const httpPort = Number(httpArg.slice(httpArg.lastIndexOf(':') + 1))
const sockets = new Set<Socket>()
let closedOut = 0
let closedIn = 0
const track = ({ socket }: { socket: Socket }): void => {
  if (socket.localPort === httpPort) return
  sockets.add(socket)
  socket.once('close', () => {
    sockets.delete(socket)
    closedOut += socket.bytesWritten
    closedIn += socket.bytesRead
  })
}
subscribe('net.client.socket', m => { track(m as { socket: Socket }) })
subscribe('net.server.socket', m => { track(m as { socket: Socket }) })

function sample (): ProbeSample {
  const elu = performance.eventLoopUtilization()
  const cpu = process.cpuUsage()
  let out = closedOut
  let inn = closedIn
  for (const s of sockets) {
    out += s.bytesWritten
    inn += s.bytesRead
  }
  return { eluActiveMs: elu.active, eluIdleMs: elu.idle, userUs: cpu.user, systemUs: cpu.system, fsyncs, meshBytesOut: out, meshBytesIn: inn }
}

const profiler = new CpuProfileWindow()

async function answer (op: string, path: unknown): Promise<unknown> {
  switch (op) {
    case 'sample': return sample()
    case 'profile-start':
      // --cpu-prof's default interval is 1 ms; a finer one gives enough samples in a few seconds.
      await profiler.start(250)
      return {}
    case 'profile-stop':
      await profiler.stop(String(path))
      return { path }
    default: throw new Error(`unknown probe op ${op}`)
  }
}

process.on('message', (m: { type?: unknown, id?: unknown, op?: unknown, path?: unknown }) => {
  if (m?.type !== 'cpu-probe') return
  answer(String(m.op), m.path).then(
    r => { process.send?.({ type: 'cpu-probe', id: m.id, ...r as object }) },
    (err: Error) => { process.send?.({ type: 'cpu-probe', id: m.id, error: err.message }) }
  )
})
