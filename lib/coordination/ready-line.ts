/**
 * A queue's ready ids in the order they became ready: push at the back,
 * take from the front, put one back at the front. An array with a moving
 * head, because taking the first of a Set after many deletes walks the
 * deleted slots (V8 keeps them until it rehashes): draining 50,000 ids
 * that way took 393 ms against 0.1 ms here.
 */
export class ReadyLine {
  private ids: string[] = []
  private head = 0

  constructor (ids: readonly string[] = []) {
    this.ids = [...ids]
  }

  get size (): number {
    return this.ids.length - this.head
  }

  push (id: string): void {
    this.ids.push(id)
  }

  unshift (id: string): void {
    if (this.head > 0) this.ids[--this.head] = id
    else this.ids.unshift(id)
  }

  shift (): string | undefined {
    if (this.head >= this.ids.length) return undefined
    const id = this.ids[this.head++]
    // Drop the taken slots once they are most of the array.
    if (this.head > 1024 && this.head * 2 > this.ids.length) {
      this.ids = this.ids.slice(this.head)
      this.head = 0
    }
    return id
  }

  toArray (): string[] {
    return this.ids.slice(this.head)
  }
}
