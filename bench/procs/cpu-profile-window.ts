/**
 * The V8 CPU profiler of this process over a window the benchmark chooses
 * (`--cpu-prof` writes only at a clean exit), through the inspector; the
 * file written is the .cpuprofile that `--cpu-prof` writes
 * (bench/cpu-profile.ts summarises it).
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'

export class CpuProfileWindow {
  private session: Session | null = null

  /** Starts profiling; `samplingIntervalUs` overrides V8's default (1 ms at --cpu-prof). */
  async start (samplingIntervalUs?: number): Promise<void> {
    if (this.session !== null) throw new Error('a profile is already running')
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    if (samplingIntervalUs !== undefined) await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await session.post('Profiler.start')
    this.session = session
  }

  /** Stops profiling and writes the profile to `path`. */
  async stop (path: string): Promise<void> {
    const session = this.session
    if (session === null) throw new Error('no profile running')
    this.session = null
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    await writeFile(path, JSON.stringify(profile))
  }
}
