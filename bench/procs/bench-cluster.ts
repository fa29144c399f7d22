/**
 * How the benchmark child processes start their Cluster: one node of a
 * three-node cluster (expect: 3) from the arguments the bench passed, with
 * the cluster secret from RAFTMESH_BENCH_SECRET, staying up on a panic (a
 * server's own handler) so a slow moment on a loaded machine does not end
 * the run.
 */
import { Cluster, type ClusterOptions } from '../../lib/index.js'

export interface BenchNodeArgs { nodeId: string, dataDir: string, listen: string, bootstrap: string[] }

export async function startBenchCluster (name: string, args: BenchNodeArgs, extra: Partial<ClusterOptions> = {}): Promise<Cluster> {
  return await Cluster.start({
    name,
    secret: process.env.RAFTMESH_BENCH_SECRET,
    dataDir: args.dataDir,
    nodeId: args.nodeId,
    listen: [args.listen],
    bootstrap: args.bootstrap,
    expect: 3,
    onPanic: () => {},
    ...extra
  })
}
