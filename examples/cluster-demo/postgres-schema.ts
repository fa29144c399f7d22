/**
 * A schema of its own in the PostgreSQL database for one `npm start` run.
 * Fences are log indices of one cluster: a new cluster's fences start low
 * again, so its purges would be refused as stale by the runs an earlier
 * cluster recorded, and its history would mix with theirs. The servers get
 * a URL whose search_path is the new schema.
 */
import pg from 'pg'

export interface RunSchema { readonly url: string, drop: () => Promise<void> }

export async function createRunSchema (databaseUrl: string, run: string): Promise<RunSchema> {
  if (!/^[a-z0-9_]+$/.test(run)) throw new Error(`a schema name is lowercase letters, digits and _, not ${run}`)
  const schema = `raftmesh_demo_${run}`
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    try { await client.query(sql) } finally { await client.end() }
  }
  await admin(`CREATE SCHEMA ${schema}`)
  const url = new URL(databaseUrl)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return { url: url.toString(), drop: async () => { await admin(`DROP SCHEMA ${schema} CASCADE`) } }
}
