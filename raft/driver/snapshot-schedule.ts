/**
 * When a node takes its next snapshot: after `every` entries applied since
 * the last one, and once those entries hold `ratio` times that snapshot's
 * bytes (see RaftNodeOptions.snapshotLogRatio).
 */
export class SnapshotSchedule {
  /** Bytes of the last snapshot taken or installed, and of the entries applied since. */
  private snapshotBytes = 0
  private appliedBytes = 0

  constructor (private readonly every: number, private readonly ratio: number) {}

  applied (bytes: number): void {
    this.appliedBytes += bytes
  }

  /** A snapshot of `bytes` was taken here, installed from the leader, or restored at start (0: none). */
  taken (bytes: number): void {
    this.snapshotBytes = bytes
    this.appliedBytes = 0
  }

  due (entriesSince: number): boolean {
    return entriesSince >= this.every && this.appliedBytes >= this.snapshotBytes * this.ratio
  }
}
