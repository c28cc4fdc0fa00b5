/**
 * Piece <-> file layout: pure maths over the torrent's concatenated byte space.
 *
 * The torrent's files, in order, form one stream of `totalLength` bytes cut into pieces of
 * `pieceLength` bytes (the last one shorter). A piece may cross any number of file
 * boundaries, and zero-length files occupy no bytes at all.
 */

export interface LayoutFile {
  /** Byte offset of the file's first byte in the concatenated stream. */
  offset: number;
  length: number;
}

/** One contiguous run of a piece that lies inside one file. */
export interface Span {
  fileIndex: number;
  /** Position inside the file. */
  fileOffset: number;
  /** Position inside the piece. */
  pieceOffset: number;
  length: number;
}

/** A set of piece indices (a Bitfield). */
export interface PieceSet {
  has(index: number): boolean;
}

export class Layout {
  readonly pieceCount: number;

  constructor(
    readonly files: readonly LayoutFile[],
    readonly pieceLength: number,
    readonly totalLength: number,
  ) {
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new RangeError(`piece length must be a positive integer, got ${pieceLength}`);
    }
    this.pieceCount = Math.ceil(totalLength / pieceLength);
  }

  /** Bytes of the pieces in `have` (all pieces when null) that are also in `wanted` (if given). */
  bytesOf(have: PieceSet | null, wanted?: PieceSet): number {
    let n = 0;
    for (let i = 0; i < this.pieceCount; i++) {
      if ((!have || have.has(i)) && (!wanted || wanted.has(i))) n += this.pieceSize(i);
    }
    return n;
  }

  pieceSize(index: number): number {
    this.checkPiece(index);
    if (index < this.pieceCount - 1) return this.pieceLength;
    return this.totalLength - this.pieceLength * (this.pieceCount - 1);
  }

  pieceOffset(index: number): number {
    this.checkPiece(index);
    return index * this.pieceLength;
  }

  /** Number of blocks of `blockSize` bytes in a piece (the last block shorter). */
  blockCount(index: number, blockSize: number): number {
    return Math.ceil(this.pieceSize(index) / blockSize);
  }

  blockSize(index: number, block: number, blockSize: number): number {
    const size = this.pieceSize(index);
    const begin = block * blockSize;
    if (block < 0 || begin >= size) throw new RangeError(`block ${block} out of piece ${index}`);
    return Math.min(blockSize, size - begin);
  }

  /** The file runs that make up bytes [begin, begin + length) of a piece, in order. */
  spans(index: number, begin = 0, length = this.pieceSize(index) - begin): Span[] {
    const size = this.pieceSize(index);
    if (begin < 0 || length < 0 || begin + length > size) {
      throw new RangeError(`range ${begin}+${length} out of piece ${index} (${size} bytes)`);
    }
    const out: Span[] = [];
    let pos = index * this.pieceLength + begin;
    const end = pos + length;
    let fi = this.fileAt(pos);
    while (pos < end && fi < this.files.length) {
      const f = this.files[fi]!;
      const fileEnd = f.offset + f.length;
      if (f.length > 0 && pos < fileEnd) {
        const n = Math.min(end, fileEnd) - pos;
        out.push({
          fileIndex: fi,
          fileOffset: pos - f.offset,
          pieceOffset: pos - index * this.pieceLength,
          length: n,
        });
        pos += n;
      }
      fi++;
    }
    return out;
  }

  /** Pieces that hold at least one byte of file `fileIndex` (an empty range for empty files). */
  piecesOfFile(fileIndex: number): { first: number; last: number } | null {
    const f = this.files[fileIndex];
    if (!f) throw new RangeError(`no file ${fileIndex}`);
    if (f.length === 0) return null;
    return {
      first: Math.floor(f.offset / this.pieceLength),
      last: Math.floor((f.offset + f.length - 1) / this.pieceLength),
    };
  }

  /** Index of the first non-empty file containing stream position `pos` (binary search). */
  private fileAt(pos: number): number {
    let lo = 0;
    let hi = this.files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.files[mid]!.offset <= pos) lo = mid;
      else hi = mid - 1;
    }
    // Several files may start at `pos` when some are empty: step back to the first of them.
    while (lo > 0 && this.files[lo - 1]!.offset === this.files[lo]!.offset) lo--;
    return lo;
  }

  private checkPiece(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.pieceCount) {
      throw new RangeError(`piece ${index} out of range 0..${this.pieceCount - 1}`);
    }
  }
}
