/**
 * A node's id is kept in its data directory, so a restarted process is the
 * same Raft member. An id given in the options must match the one kept.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { InvalidArgumentError } from './errors.js'

const FILE = 'node-id'

export async function loadOrCreateNodeId (dataDir: string, wanted: string | undefined): Promise<string> {
  await mkdir(dataDir, { recursive: true })
  const path = join(dataDir, FILE)
  let kept: string | null = null
  try {
    kept = (await readFile(path, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (kept !== null) {
    if (wanted !== undefined && wanted !== kept) {
      throw new InvalidArgumentError(`data directory ${dataDir} belongs to node "${kept}", not "${wanted}": use another directory or that id`)
    }
    return kept
  }
  const id = wanted ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 40) || 'node'}-${randomBytes(3).toString('hex')}`
  await writeFile(`${path}.tmp`, id + '\n')
  await rename(`${path}.tmp`, path)
  return id
}
