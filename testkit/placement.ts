/**
 * Where a launcher in testkit/ or bench/ runs a child: on this machine's
 * loopback, or inside a network namespace of a NetnsLab (testkit/netns.ts),
 * where the child listens on its host's address and real partitions can cut
 * it off. Shared by every launcher that can place children in a lab, so
 * they all wrap commands the same way.
 *
 * `ip netns exec` execs the command (no fork): the spawned process is the
 * child itself, so its PID, exit status and signals (SIGKILL, SIGSTOP,
 * SIGCONT) are the child's, and an IPC channel's descriptor passes through.
 */

/** The address a child listens on, and the command prefix that puts it there (e.g. `ip netns exec ns1`). */
export interface Placement { readonly host: string, readonly wrap: readonly string[] }

export const LOOPBACK: Placement = { host: '127.0.0.1', wrap: [] }

/** spawn()'s command and arguments that run `command args` at placement `p`. */
export function placedCommand (p: Placement, command: string, args: readonly string[]): [string, string[]] {
  const [cmd, ...rest] = [...p.wrap, command, ...args]
  return [cmd, rest]
}
