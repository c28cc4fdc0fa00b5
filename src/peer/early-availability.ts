/**
 * What a peer said about its pieces before we knew how many the torrent has (a magnet link's
 * metadata phase): its first availability message (bitfield, `have all`, `have none`), the
 * pieces of later `have`s and late bitfields, and its `allowed fast` pieces. Once the metadata is
 * known, `resolve(pieceCount)` turns it into the peer's bitfield with the same checks as the
 * messages would have met (wrong bitfield length, spare bits, a piece that does not exist: a
 * WireError), so a connection kept from the metadata phase loses none of it.
 *
 * Memory is bounded: no torrent tdl accepts has more than MAX_EARLY_PIECES pieces (a 20-byte
 * hash each within MAX_METADATA_SIZE), so a first bitfield longer than that is refused at once,
 * and later pieces go into one bit array of at most that many bits (about 100 KiB); a `have`
 * beyond it is remembered as "out of range" and refused at `resolve`.
 */
import { WireError } from '../errors.js';
import { Bitfield } from '../wire/bitfield.js';
import { MAX_METADATA_SIZE } from '../wire/ut-metadata.js';

/** The most pieces a torrent tdl accepts can have: one 20-byte hash each in the metadata. */
export const MAX_EARLY_PIECES = Math.ceil(MAX_METADATA_SIZE / 20);
const MAX_EARLY_BYTES = Math.ceil(MAX_EARLY_PIECES / 8);
/** `allowed fast` pieces kept (the swarm keeps as many). */
export const MAX_EARLY_ALLOWED_FAST = 64;

export class EarlyAvailability {
  /** The first availability message: a bitfield's bytes (a copy), all, or none. */
  #base: Buffer | 'all' | 'none' | null = null;
  /** Pieces from later `have`s and bitfields, in wire bit order, grown on demand. */
  #later: Buffer = Buffer.alloc(0);
  #outOfRange = -1;
  /** The length of every bitfield so far (they must agree, and fit the piece count). */
  #bitfieldBytes = -1;
  readonly allowedFast: number[] = [];

  /** An availability message arrived (the base, or a later one). */
  get seen(): boolean {
    return this.#base !== null;
  }

  /** `bitfield` (its payload is a view: copied here). */
  bitfield(bytes: Buffer): void {
    if (bytes.length > MAX_EARLY_BYTES) {
      throw new WireError(`bitfield of ${bytes.length} bytes is longer than any torrent's`);
    }
    if (this.#bitfieldBytes >= 0 && bytes.length !== this.#bitfieldBytes) {
      throw new WireError(`bitfields of ${this.#bitfieldBytes} and ${bytes.length} bytes`);
    }
    this.#bitfieldBytes = bytes.length;
    if (this.#base === null) this.#base = Buffer.from(bytes);
    else this.#orLater(bytes);
  }

  haveAll(): void {
    // First or late, it means every piece, whatever the count turns out to be.
    this.#base = 'all';
  }

  haveNone(): void {
    // A late `have none` takes nothing away.
    if (this.#base === null) this.#base = 'none';
  }

  have(index: number): void {
    if (index >= MAX_EARLY_PIECES) {
      this.#outOfRange = Math.max(this.#outOfRange, index);
      return;
    }
    this.#grow((index >> 3) + 1);
    this.#later[index >> 3]! |= 0x80 >> (index & 7);
  }

  allowed(index: number): void {
    if (this.allowedFast.length < MAX_EARLY_ALLOWED_FAST && !this.allowedFast.includes(index)) {
      this.allowedFast.push(index);
    }
  }

  /**
   * The peer's pieces for a torrent of `pieceCount` pieces. Throws WireError for a first
   * bitfield of the wrong length or with spare bits set, or a `have` of a piece that does not
   * exist.
   */
  resolve(pieceCount: number): Bitfield {
    if (this.#outOfRange >= 0) {
      throw new WireError(`have for nonexistent piece ${this.#outOfRange}`);
    }
    const byteLength = Math.ceil(pieceCount / 8);
    if (this.#bitfieldBytes >= 0 && this.#bitfieldBytes !== byteLength) {
      const n = this.#bitfieldBytes;
      throw new WireError(
        `bitfield is ${n} bytes, expected ${byteLength} for ${pieceCount} pieces`,
      );
    }
    const bf = Buffer.isBuffer(this.#base)
      ? Bitfield.fromWire(this.#base, pieceCount)
      : new Bitfield(pieceCount);
    if (this.#base === 'all') bf.setAll();
    const later = this.#later;
    for (let byte = 0; byte < later.length; byte++) {
      const b = later[byte]!;
      if (b === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if ((b & (0x80 >> bit)) === 0) continue;
        const i = byte * 8 + bit;
        if (i >= pieceCount) throw new WireError(`have for nonexistent piece ${i}`);
        bf.set(i);
      }
    }
    return bf;
  }

  #orLater(bytes: Buffer): void {
    // A late bitfield only adds pieces, as the connection takes it once the count is known.
    // Its length is checked at resolve, and a bit past the last piece is refused there too.
    const n = bytes.length;
    this.#grow(n);
    for (let i = 0; i < n; i++) this.#later[i]! |= bytes[i]!;
  }

  #grow(bytes: number): void {
    if (this.#later.length >= bytes) return;
    const next = Buffer.alloc(
      Math.min(MAX_EARLY_BYTES, Math.max(bytes, this.#later.length * 2, 16)),
    );
    this.#later.copy(next);
    this.#later = next;
  }
}
