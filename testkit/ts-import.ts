/**
 * The `--import` that runs TypeScript in a child process: tsx, except under
 * the test runner, whose loader (test/loader) names itself in
 * RAFTMESH_TS_IMPORT. Children then share its cache of transpiled files, and
 * the coverage they record maps back to the sources; tsx's source maps would
 * make every file they load look covered (privatenumber/tsx#433).
 */
export const TS_IMPORT: readonly string[] = ['--import', process.env.RAFTMESH_TS_IMPORT ?? 'tsx']
