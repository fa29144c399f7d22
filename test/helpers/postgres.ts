/**
 * A private PostgreSQL server for one test: Debian's binaries
 * (/usr/lib/postgresql/<version>/bin), a fresh cluster in a temporary
 * directory, listening on a free port of 127.0.0.1 only, with trust
 * authentication for the local superuser. Run as root, the server runs as
 * the `postgres` user (PostgreSQL refuses to run as root).
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../../testkit/local-cluster.js'

const run = promisify(execFile)

export interface PostgresServer {
  /** postgres://... of a fresh, empty database. */
  readonly url: string
  stop: () => Promise<void>
}

/** The newest installed PostgreSQL's bin directory, or null when there is none. */
export function postgresBin (): string | null {
  const base = '/usr/lib/postgresql'
  if (!existsSync(base)) return null
  const versions = readdirSync(base).filter(v => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
  return versions.length === 0 ? null : join(base, versions[0], 'bin')
}

export async function startPostgres (bin: string): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-pg-'))
  const data = join(dir, 'data')
  const asRoot = userInfo().uid === 0
  const user = asRoot ? 'postgres' : userInfo().username
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    const { stdout: gid } = await run('id', ['-g', 'postgres'])
    await chown(dir, Number(stdout), Number(gid))
  }
  const pgRun = async (tool: string, args: string[]): Promise<void> => {
    const cmd = join(bin, tool)
    await (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { cwd: dir }) : run(cmd, args, { cwd: dir }))
  }
  const port = await freePort()
  let started = false
  try {
    await pgRun('initdb', ['-D', data, '-A', 'trust', '-U', user, '--no-sync', '-E', 'UTF8'])
    // The socket directory is the temporary one: a test must not need /var/run/postgresql.
    await pgRun('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start'])
    started = true
    await pgRun('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', user, 'clinic'])
  } catch (err) {
    if (started) await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {})
    await rm(dir, { recursive: true, force: true })
    throw new Error(`could not start PostgreSQL from ${bin}: ${(err as Error).message}`)
  }
  return {
    url: `postgres://${user}@127.0.0.1:${port}/clinic`,
    stop: async () => {
      await pgRun('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
      await rm(dir, { recursive: true, force: true })
    }
  }
}
