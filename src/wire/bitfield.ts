/**
 * Piece bitfield in BitTorrent bit order: piece 0 is the high bit of the first byte.
 */
import { WireError } from '../errors.js';

function popcount8(b: number): number {
  b = b - ((b >> 1) & 0x55);
  b = (b & 0x33) + ((b >> 2) & 0x33);
  return (b + (b >> 4)) & 0x0f;
}

export class Bitfield {
  readonly #size: number;
  readonly #bytes: Buffer;
  #count = 0;

  /** `bytes` (copied) must be ceil(size/8) long; spare bits are cleared. */
  constructor(size: number, bytes?: Buffer) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`bad bitfield size ${size}`);
    this.#size = size;
    const byteLength = Math.ceil(size / 8);
    this.#bytes = Buffer.alloc(byteLength);
    if (bytes !== undefined) {
      if (bytes.length !== byteLength) {
        throw new RangeError(
          `bitfield of ${size} bits needs ${byteLength} bytes, got ${bytes.length}`,
        );
      }
      bytes.copy(this.#bytes);
      const spare = byteLength * 8 - size;
      if (spare > 0) this.#bytes[byteLength - 1]! &= (0xff << spare) & 0xff;
      for (const b of this.#bytes) this.#count += popcount8(b);
    }
  }

  /**
   * Validates a peer's `bitfield` payload: exactly ceil(pieceCount/8) bytes and no spare bit
   * set past the last piece (WireError otherwise).
   */
  static fromWire(bytes: Buffer, pieceCount: number): Bitfield {
    const byteLength = Math.ceil(pieceCount / 8);
    if (bytes.length !== byteLength) {
      throw new WireError(
        `bitfield is ${bytes.length} bytes, expected ${byteLength} for ${pieceCount} pieces`,
      );
    }
    const spare = byteLength * 8 - pieceCount;
    if (spare > 0 && (bytes[byteLength - 1]! & ((1 << spare) - 1)) !== 0) {
      throw new WireError('bitfield has spare bits set past the last piece');
    }
    return new Bitfield(pieceCount, bytes);
  }

  get size(): number {
    return this.#size;
  }

  /** Number of bits set. */
  get count(): number {
    return this.#count;
  }

  /** False for any index outside 0..size-1. */
  has(i: number): boolean {
    if (!Number.isInteger(i) || i < 0 || i >= this.#size) return false;
    return (this.#bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0;
  }

  /** Sets bit `i`; WireError if out of range (indexes usually come from a peer's `have`). */
  set(i: number): void {
    this.#check(i);
    const mask = 0x80 >> (i & 7);
    const byte = this.#bytes[i >> 3]!;
    if ((byte & mask) === 0) {
      this.#bytes[i >> 3] = byte | mask;
      this.#count++;
    }
  }

  clear(i: number): void {
    this.#check(i);
    const mask = 0x80 >> (i & 7);
    const byte = this.#bytes[i >> 3]!;
    if ((byte & mask) !== 0) {
      this.#bytes[i >> 3] = byte & ~mask;
      this.#count--;
    }
  }

  /** Sets every bit (a peer's `have all`). */
  setAll(): void {
    this.#bytes.fill(0xff);
    const spare = this.#bytes.length * 8 - this.#size;
    if (spare > 0) this.#bytes[this.#bytes.length - 1]! &= (0xff << spare) & 0xff;
    this.#count = this.#size;
  }

  /**
   * Sets the bits set in `other` (a bitfield of the same size; null: every bit) and returns the
   * indexes that were not set before. Byte by byte: a complete byte or one that adds nothing
   * costs one comparison, so a peer repeating its availability cannot make this O(pieces) each
   * time (once complete, it is O(1)).
   */
  merge(other: Bitfield | null): number[] {
    const added: number[] = [];
    if (this.#count === this.#size) return added;
    const last = this.#bytes.length - 1;
    const spare = this.#bytes.length * 8 - this.#size;
    for (let j = 0; j <= last; j++) {
      const mine = this.#bytes[j]!;
      let theirs = other === null ? 0xff : other.#bytes[j]!;
      if (j === last && spare > 0) theirs &= (0xff << spare) & 0xff;
      const fresh = theirs & ~mine & 0xff;
      if (fresh === 0) continue;
      this.#bytes[j] = mine | fresh;
      this.#count += popcount8(fresh);
      for (let b = 0; b < 8; b++) if (fresh & (0x80 >> b)) added.push(j * 8 + b);
    }
    return added;
  }

  isComplete(): boolean {
    return this.#count === this.#size;
  }

  /** Number of bits set both here and in `other` (of the same size). */
  countBoth(other: Bitfield): number {
    if (other.#size !== this.#size) throw new RangeError('bitfields of different sizes');
    let n = 0;
    for (let j = 0; j < this.#bytes.length; j++) n += popcount8(this.#bytes[j]! & other.#bytes[j]!);
    return n;
  }

  /** A copy of the bytes, as sent in a `bitfield` message. */
  toBuffer(): Buffer {
    return Buffer.from(this.#bytes);
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#size) {
      throw new WireError(`piece index ${i} out of range 0..${this.#size - 1}`);
    }
  }
}
