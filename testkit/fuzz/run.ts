/**
 * Feeds fuzzed frames through each decoder and sorts every outcome:
 * a valid frame must decode back to what was encoded; any other frame is
 * either accepted (a mutation may still be a valid frame) or rejected with
 * the decoder's named error. Anything else is a crash: another error class,
 * a valid frame refused, or a valid frame decoded to something else. A
 * decode over HANG_MS (best of three), or heap growth past HANG_HEAP_BYTES
 * within one batch, is a hang.
 */
import fc from 'fast-check'
import { frameArbitrary, type Frame, type FrameKind } from './frames.js'
import { sameDecoded, TARGETS, type FuzzTarget } from './targets.js'

export const HANG_MS = 100
/** Decodes slower than this are timed again (see feed). */
const RETIME_MICROS = 5000
export const HANG_HEAP_BYTES = 512 * 1024 * 1024
/** Frames drawn per fast-check sample call: the unit of replay. */
export const BATCH = 500

export interface Crash {
  readonly target: string
  readonly kind: 'foreign-error' | 'valid-refused' | 'round-trip' | 'hang'
  readonly frameKind: FrameKind
  readonly error: string
  /** The frame, hex (cut at 4 KiB). */
  readonly hex: string
  readonly bytes: number
  /** Replays the batch holding it: `--seed <seed> --target <target> --batch <batch>`. */
  readonly seed: number
  readonly batch: number
  /** Frames with the same target, kind and error after the first. */
  repeats: number
}

export interface TargetResult {
  readonly target: string
  readonly path: string
  frames: number
  valid: number
  roundTrips: number
  accepted: number
  rejected: number
  crashes: number
  hangs: number
  maxMicros: number
  totalMicros: number
  /** The frame that took maxMicros: its kind, size and first bytes. */
  slowest: { kind: FrameKind, bytes: number, head: string } | null
  /** Heap in use after the target's largest batch. */
  peakHeapBytes: number
}

export interface FuzzResult {
  readonly seed: number
  readonly framesPerTarget: number
  readonly targets: TargetResult[]
  readonly crashes: Crash[]
  readonly peakHeapBytes: number
  readonly peakRssBytes: number
  readonly seconds: number
}

export interface FuzzOptions {
  readonly frames: number
  readonly seed: number
  /** Only these targets (default all). */
  readonly only?: readonly string[]
  /** Only this batch of each target (replay). */
  readonly batch?: number
  readonly onProgress?: (t: TargetResult) => void
}

/** The fast-check seed of one batch of one target. */
export function batchSeed (seed: number, targetIndex: number, batch: number): number {
  return (seed * 1_000_003 + targetIndex * 7919 + batch * 104_729) | 0
}

export function runFuzz (opts: FuzzOptions): FuzzResult {
  const started = performance.now()
  const targets = TARGETS.filter(t => opts.only === undefined || opts.only.includes(t.name))
  const perTarget = Math.ceil(opts.frames / targets.length)
  const crashes = new Map<string, Crash>()
  const results: TargetResult[] = []
  let peakHeap = 0
  let peakRss = 0
  for (const t of targets) {
    const r: TargetResult = { target: t.name, path: t.path, frames: 0, valid: 0, roundTrips: 0, accepted: 0, rejected: 0, crashes: 0, hangs: 0, maxMicros: 0, totalMicros: 0, slowest: null, peakHeapBytes: 0 }
    const arb = frameArbitrary(t)
    const ti = TARGETS.indexOf(t)
    const batches = Math.ceil(perTarget / BATCH)
    for (let b = 0; b < batches; b++) {
      if (opts.batch !== undefined && b !== opts.batch) continue
      const heapBefore = process.memoryUsage().heapUsed
      const frames = fc.sample(arb, { seed: batchSeed(opts.seed, ti, b), numRuns: Math.min(BATCH, perTarget - b * BATCH) })
      for (const f of frames) {
        const crash = feed(t, f, r)
        if (crash !== null) record(crashes, { ...crash, seed: opts.seed, batch: b, repeats: 0 })
      }
      const mem = process.memoryUsage()
      peakHeap = Math.max(peakHeap, mem.heapUsed)
      r.peakHeapBytes = Math.max(r.peakHeapBytes, mem.heapUsed)
      peakRss = Math.max(peakRss, mem.rss)
      if (mem.heapUsed - heapBefore > HANG_HEAP_BYTES) {
        r.hangs++
        record(crashes, { target: t.name, kind: 'hang', frameKind: 'bomb', error: `heap grew by ${mem.heapUsed - heapBefore} bytes in one batch`, hex: '', bytes: 0, seed: opts.seed, batch: b, repeats: 0 })
      }
    }
    results.push(r)
    opts.onProgress?.(r)
  }
  return { seed: opts.seed, framesPerTarget: perTarget, targets: results, crashes: [...crashes.values()], peakHeapBytes: peakHeap, peakRssBytes: peakRss, seconds: (performance.now() - started) / 1000 }
}

type Finding = Omit<Crash, 'seed' | 'batch' | 'repeats'>

/** Decodes one frame and counts the outcome; returns the crash, if it is one. */
export function feed (t: FuzzTarget, f: Frame, r: TargetResult): Finding | null {
  r.frames++
  if (f.kind === 'valid') r.valid++
  let out: unknown
  let err: unknown = null
  const t0 = performance.now()
  try {
    out = t.decode(f.bytes)
  } catch (e) {
    err = e
  }
  let micros = (performance.now() - t0) * 1000
  // A garbage collection or another process can stall one decode; a hang
  // stalls every try. Slow frames are timed twice more and keep their best.
  for (let i = 0; i < 2 && micros > RETIME_MICROS; i++) micros = Math.min(micros, timeDecode(t, f.bytes))
  r.totalMicros += micros
  if (micros > r.maxMicros) {
    r.maxMicros = micros
    r.slowest = { kind: f.kind, bytes: f.bytes.byteLength, head: Buffer.from(f.bytes.subarray(0, 16)).toString('hex') }
  }
  const finding = (kind: Crash['kind'], error: string): Finding => {
    r.crashes++
    return { target: t.name, kind, frameKind: f.kind, error, hex: Buffer.from(f.bytes.subarray(0, 4096)).toString('hex'), bytes: f.bytes.byteLength }
  }
  if (micros > HANG_MS * 1000) {
    r.hangs++
    return finding('hang', `one decode took ${Math.round(micros / 1000)} ms`)
  }
  if (err !== null) {
    if (!t.rejects(err)) return finding('foreign-error', describe(err))
    if (f.kind === 'valid') return finding('valid-refused', describe(err))
    r.rejected++
    return null
  }
  if (f.kind === 'valid') {
    if (!sameDecoded(out, f.expect)) return finding('round-trip', `decoded ${preview(out)}, encoded ${preview(f.expect)}`)
    r.roundTrips++
  } else {
    r.accepted++
  }
  return null
}

function timeDecode (t: FuzzTarget, bytes: Uint8Array): number {
  const t0 = performance.now()
  try {
    t.decode(bytes)
  } catch {}
  return (performance.now() - t0) * 1000
}

function record (crashes: Map<string, Crash>, c: Crash): void {
  // Distinct by target, kind and error, without the numbers and quoted data that vary from frame to frame.
  const key = `${c.target}|${c.kind}|${c.error.replace(/["'].*$/s, '').replace(/\d+/g, '#').slice(0, 80)}`
  const seen = crashes.get(key)
  if (seen === undefined) crashes.set(key, c)
  else seen.repeats++
}

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message.slice(0, 200)}` : `non-error thrown: ${String(err).slice(0, 200)}`
}

function preview (v: unknown): string {
  try {
    return JSON.stringify(v, (_, x) => x instanceof Uint8Array ? `<${x.byteLength} bytes>` : typeof x === 'bigint' ? `${x}n` : x).slice(0, 200)
  } catch {
    return String(v).slice(0, 200)
  }
}
