/**
 * Summarises a V8 .cpuprofile (what `--cpu-prof` and the inspector's
 * Profiler.stop produce) by self time: per function and per module. Self
 * time is the sum of the time deltas of the samples that landed in a node,
 * which is exact where hitCount × interval is only nominal.
 */
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
export interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples?: number[], timeDeltas?: number[] }

export interface SelfTime {
  readonly name: string
  readonly selfMs: number
  /** Share of the profile's busy time (everything but `(idle)`). */
  readonly pct: number
}

export interface ProfileSummary {
  readonly wallMs: number
  /** Sampled time outside `(idle)`. */
  readonly busyMs: number
  readonly gcMs: number
  readonly topFunctions: SelfTime[]
  readonly topModules: SelfTime[]
}

/** node_modules/<pkg> (scoped packages whole), node:<builtin>, or the file relative to the tree. */
function moduleOf (url: string, root: string): string {
  if (url === '') return '(native/vm)'
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/').replace(/^node:internal\/?/, 'node:')
  let path = url
  try { path = url.startsWith('file:') ? fileURLToPath(url) : url } catch {}
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = path.slice(nm + '/node_modules/'.length).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  return relative(root, path)
}

const ms = (us: number): number => Math.round(us / 10) / 100

/**
 * A function's name in the summary. tsx hands V8 each TypeScript file as one
 * line, so a line number there says nothing; anonymous functions and native
 * bindings (fdatasync, writeBuffer) are told apart by the nearest named
 * JavaScript caller instead.
 */
function label (n: ProfileNode, parent: Map<number, ProfileNode>, root: string): string {
  const f = n.callFrame
  if (f.functionName.startsWith('(')) return f.functionName
  const where = (c: CallFrame): string => {
    // The whole builtin's name (node:fs/promises, not node:fs): line numbers refer to it.
    const m = c.url.startsWith('node:') ? c.url.replace(/^node:internal\//, 'node:') : moduleOf(c.url, root)
    return c.lineNumber > 0 ? `${m}:${c.lineNumber + 1}` : m
  }
  const own = f.url === '' ? f.functionName : `${f.functionName || '(anonymous)'} ${where(f)}`
  if (f.functionName !== '' && f.url !== '') return own
  for (let p = parent.get(n.id), i = 0; p !== undefined && i < 200; p = parent.get(p.id), i++) {
    if (p.callFrame.functionName !== '' && p.callFrame.url !== '' && !p.callFrame.functionName.startsWith('(')) return `${own} < ${p.callFrame.functionName} ${where(p.callFrame)}`
  }
  return own
}

export function summariseProfile (p: CpuProfile, root: string, top = 20): ProfileSummary {
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const parent = new Map<number, ProfileNode>()
  for (const n of p.nodes) for (const c of n.children ?? []) { const child = byId.get(c); if (child !== undefined) parent.set(child.id, n) }
  const selfUs = new Map<number, number>()
  const samples = p.samples ?? []
  const deltas = p.timeDeltas ?? []
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  for (let i = 0; i < samples.length; i++) {
    const d = deltas[i + 1] ?? 0
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, d))
  }
  const fn = new Map<string, number>()
  const mod = new Map<string, number>()
  let busy = 0
  let gc = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (node === undefined) continue
    const f = node.callFrame
    if (f.functionName === '(idle)') continue
    busy += us
    if (f.functionName === '(garbage collector)') gc += us
    const m = f.functionName.startsWith('(') ? f.functionName : moduleOf(f.url, root)
    const name = label(node, parent, root)
    fn.set(name, (fn.get(name) ?? 0) + us)
    mod.set(m, (mod.get(m) ?? 0) + us)
  }
  const rank = (xs: Map<string, number>): SelfTime[] => [...xs].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, us]) => ({ name, selfMs: ms(us), pct: busy === 0 ? 0 : Math.round(us / busy * 1000) / 10 }))
  return { wallMs: ms(p.endTime - p.startTime), busyMs: ms(busy), gcMs: ms(gc), topFunctions: rank(fn), topModules: rank(mod) }
}
