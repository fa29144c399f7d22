// Loads the tests' TypeScript through hooks.mjs (see there why not ts-node or
// tsx), and has the processes the tests start load theirs the same way
// (testkit/ts-import.ts).
import { register } from 'node:module'

register('./hooks.mjs', import.meta.url)
process.env.RAFTMESH_TS_IMPORT ??= import.meta.url
