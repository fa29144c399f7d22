/**
 * The raftmesh package: `import { Cluster } from 'raftmesh'`.
 */
export * from './errors.js'
