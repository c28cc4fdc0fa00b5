/**
 * The pieces still to start, grouped by availability (how many connected peers have each), in
 * memory fixed by the piece count whatever the number of peers.
 *
 * One Int32Array holds the pieces of every group, rarest group first: group `a` is
 * `order[bounds[a] .. bounds[a + 1])`, in no particular order, and `slot[i]` is piece i's place
 * in `order` (-1 when it is in no group). A piece whose availability goes up by one swaps with
 * the last piece of its group and the boundary above moves down over it; down by one, it swaps
 * with the first and the boundary moves up: O(1) either way, which is what a peer's bitfield
 * costs per piece. Taking a piece out or putting one back moves one piece per group above its
 * own (groups go as high as the peers connected).
 *
 * A list per group (the earlier layout) kept the largest size each list ever had: every peer
 * with every piece moved all of them up a group, so each group's list grew to the piece count,
 * 35 MB per peer on a torrent of three million pieces.
 */
export class AvailabilityBuckets {
  private readonly order: Int32Array;
  /** Piece i's place in `order`; -1: in no group. */
  readonly slot: Int32Array;
  /** Group a is order[bounds[a], bounds[a + 1]); the last entry is the number of pieces held. */
  private readonly bounds: number[] = [0, 0];

  constructor(pieceCount: number) {
    this.order = new Int32Array(pieceCount);
    this.slot = new Int32Array(pieceCount).fill(-1);
  }

  /** Groups 0 .. groups - 1 exist (the highest may be empty). */
  get groups(): number {
    return this.bounds.length - 1;
  }

  /** Pieces held, in all groups. */
  get size(): number {
    return this.bounds[this.bounds.length - 1]!;
  }

  /** Is piece i in a group? */
  has(i: number): boolean {
    return this.slot[i]! >= 0;
  }

  /** Number of pieces in group a. */
  groupSize(a: number): number {
    if (a >= this.groups) return 0;
    return this.bounds[a + 1]! - this.bounds[a]!;
  }

  /** The k-th piece of group a (0 <= k < groupSize(a)). */
  at(a: number, k: number): number {
    return this.order[this.bounds[a]! + k]!;
  }

  /** Makes group a exist. */
  private reach(a: number): void {
    const end = this.size;
    while (this.groups <= a) this.bounds.push(end);
  }

  private put(piece: number, at: number): void {
    this.order[at] = piece;
    this.slot[piece] = at;
  }

  /** Puts piece i (in no group) into group a. */
  add(i: number, a: number): void {
    if (this.slot[i]! >= 0) return;
    this.reach(a);
    // Each group above lends its first place to the one below: its first piece moves to its end.
    let hole = this.size;
    for (let g = this.groups - 1; g > a; g--) {
      const first = this.bounds[g]!;
      if (first !== hole) this.put(this.order[first]!, hole);
      hole = first;
      this.bounds[g + 1]!++;
    }
    this.bounds[a + 1]!++;
    this.put(i, hole);
  }

  /** Takes piece i, in group a, out of the groups. */
  remove(i: number, a: number): void {
    const at = this.slot[i]!;
    if (at < 0) return;
    // Its group's last piece fills its place; each group above gives its last piece to fill the
    // place its lower neighbour gave up.
    let hole = at;
    for (let g = a; g < this.groups; g++) {
      const last = this.bounds[g + 1]! - 1;
      if (last !== hole) this.put(this.order[last]!, hole);
      hole = last;
      this.bounds[g + 1]!--;
    }
    this.slot[i] = -1;
  }

  /** Piece i, in group a, goes to group a + 1. */
  up(i: number, a: number): void {
    const at = this.slot[i]!;
    if (at < 0) return;
    this.reach(a + 1);
    const last = this.bounds[a + 1]! - 1;
    this.swap(at, last);
    this.bounds[a + 1]!--;
  }

  /** Piece i, in group a > 0, goes to group a - 1. */
  down(i: number, a: number): void {
    const at = this.slot[i]!;
    if (at < 0) return;
    const first = this.bounds[a]!;
    this.swap(at, first);
    this.bounds[a]!++;
  }

  private swap(x: number, y: number): void {
    if (x === y) return;
    const px = this.order[x]!;
    const py = this.order[y]!;
    this.put(py, x);
    this.put(px, y);
  }
}
