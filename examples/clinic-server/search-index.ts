/**
 * A node's in-memory patient search index: every node keeps its own, fed
 * from the database at start and then by `patient.saved` events from any
 * node, which is what cluster events are for.
 */
export class SearchIndex {
  private readonly names = new Map<number, string>()

  put (id: number, name: string): void {
    this.names.set(id, name.toLowerCase())
  }

  /** Patient ids whose name contains every word of `query`. */
  search (query: string): number[] {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean)
    if (words.length === 0) return []
    return [...this.names].filter(([, name]) => words.every(w => name.includes(w))).map(([id]) => id).sort((a, b) => a - b)
  }
}
