/**
 * SVG plots of fault runs, from vega-lite specs rendered offline (vega's
 * headless View, no browser, no network): latency over time with the fault
 * windows shaded, throughput over time, and failover times across runs.
 */
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import type { RunResult } from './run-once.js'

export async function renderSvg (spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

const faultLayer = (run: RunResult): Record<string, unknown> => ({
  data: { values: run.faults.map(f => ({ from: f.from / 1000, to: f.to / 1000, fault: f.kind, label: `${f.kind} n${f.node + 1}${f.wasLeader ? ' (leader)' : ''}` })) },
  layer: [
    {
      mark: { type: 'rect', opacity: 0.22 },
      encoding: {
        x: { field: 'from', type: 'quantitative' },
        x2: { field: 'to' },
        color: { field: 'fault', type: 'nominal', legend: { title: 'fault windows' }, scale: { domain: ['kill', 'kill-torn', 'pause', 'partition'], range: ['#d62728', '#9467bd', '#ff7f0e', '#2ca02c'] } }
      }
    },
    {
      mark: { type: 'text', align: 'left', baseline: 'top', dx: 2, dy: 2, fontSize: 9, angle: 0 },
      encoding: { x: { field: 'from', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } }
    }
  ]
})

/** One run's time line: `layer` over its fault windows. */
function overTime (run: RunResult, what: string, layer: object): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${what} over time, seed ${run.seed} (fault windows shaded)`,
    width: 720,
    height: 300,
    resolve: { scale: { color: 'independent' } },
    layer: [faultLayer(run), layer]
  } as unknown as TopLevelSpec
}

/** Latency of every lock acquire and enqueue of one run, log scale, over the run's time line. */
export function latencySpec (run: RunResult): TopLevelSpec {
  return overTime(run, 'Latency', {
    data: { values: run.latency.map(p => ({ ...p, ms: Math.max(0.1, p.ms) })) },
    mark: { type: 'point', size: 6, filled: true, opacity: 0.5 },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since the run began' },
      y: { field: 'ms', type: 'quantitative', title: 'latency (ms, log)', scale: { type: 'log' } },
      color: { field: 'op', type: 'nominal', title: 'operation', scale: { range: ['#1f4e79', '#c55a11'] } }
    }
  })
}

/** Completed operations per second, by kind, of one run. */
export function throughputSpec (run: RunResult): TopLevelSpec {
  return overTime(run, 'Throughput', {
    data: { values: run.throughput },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since the run began' },
      y: { field: 'count', type: 'quantitative', title: 'completed per second' },
      color: { field: 'op', type: 'nominal', title: 'operation', scale: { scheme: 'dark2' } }
    }
  })
}

/** Every failover time of every run, by the fault that took the leader away. */
export function failoverSpec (runs: readonly RunResult[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Failover: fault on the leader to a new leader seen by another node (${runs.length} runs)`,
    width: 600,
    height: 180,
    data: { values: runs.flatMap(r => r.failovers.map(f => ({ seed: r.seed, fault: f.kind, ms: f.ms }))) },
    mark: { type: 'tick', thickness: 2 },
    encoding: {
      x: { field: 'ms', type: 'quantitative', title: 'failover (ms)' },
      y: { field: 'fault', type: 'nominal', title: null },
      color: { field: 'fault', type: 'nominal', legend: null }
    }
  } as unknown as TopLevelSpec
}
