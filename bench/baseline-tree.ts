/**
 * A revision of this repository extracted into a temporary directory
 * (`git archive`, so the repository's worktree list is left alone) with
 * node_modules linked to ours, for benchmarks that run a baseline and the
 * current tree side by side.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, realpath, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface BaselineTree {
  readonly dir: string
  /** The revision as asked for and the commit it named when the tree was built. */
  readonly rev: string
  readonly commit: string
  remove(): Promise<void>
}

export async function extractRevision (repo: string, rev: string): Promise<BaselineTree> {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: repo, encoding: 'utf8' }).trim()
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-baseline-'))
  try {
    const tar = execFileSync('git', ['archive', '--format=tar', commit], { cwd: repo, maxBuffer: 512 * 1024 * 1024 })
    execFileSync('tar', ['-x', '-C', dir], { input: tar })
    await symlink(await realpath(join(repo, 'node_modules')), join(dir, 'node_modules'))
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return { dir, rev, commit, remove: async () => { await rm(dir, { recursive: true, force: true }) } }
}
