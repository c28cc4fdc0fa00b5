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

/**
 * The file table is two typed arrays (where each file starts, how long it is), whatever the
 * number of files: a Layout holds no object per file (see `files` for the one exception).
 */
export class Layout {
  readonly pieceCount: number;
  /** Number of files, empty and padding files included. */
  readonly fileCount: number;
  private readonly offsets: Float64Array;
  private readonly lengths: Float64Array;

  /**
   * From file objects, or (`{ starts }`) from files laid end to end: file i is bytes
   * [starts[i], starts[i + 1]) of the stream, and `starts` has one entry more than there are
   * files, the last being the total length (as fileOffsets in metainfo/torrent.ts gives it).
   */
  constructor(
    files: readonly LayoutFile[] | { readonly starts: Float64Array },
    readonly pieceLength: number,
    readonly totalLength: number,
  ) {
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new RangeError(`piece length must be a positive integer, got ${pieceLength}`);
    }
    this.pieceCount = Math.ceil(totalLength / pieceLength);
    if ('starts' in files) {
      const starts = files.starts;
      const n = starts.length - 1;
      if (n < 0 || starts[n] !== totalLength) {
        throw new RangeError('starts must end with the total length');
      }
      this.fileCount = n;
      this.offsets = starts.subarray(0, n);
      this.lengths = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const len = starts[i + 1]! - starts[i]!;
        if (!(len >= 0)) throw new RangeError(`file ${i} ends before it starts`);
        this.lengths[i] = len;
      }
      return;
    }
    this.fileCount = files.length;
    this.offsets = new Float64Array(files.length);
    this.lengths = new Float64Array(files.length);
    files.forEach((f, i) => {
      this.offsets[i] = f.offset;
      this.lengths[i] = f.length;
    });
  }

  /** Where file `i` starts in the stream. */
  fileOffset(i: number): number {
    this.checkFile(i);
    return this.offsets[i]!;
  }

  fileLength(i: number): number {
    this.checkFile(i);
    return this.lengths[i]!;
  }

  /** File `i` as an object (made anew on each call). */
  file(i: number): LayoutFile {
    this.checkFile(i);
    return { offset: this.offsets[i]!, length: this.lengths[i]! };
  }

  /** Bytes of the pieces in `have` (all pieces when null) that are also in `wanted` (if given). */
  bytesOf(have: PieceSet | null, wanted?: PieceSet): number {
    let n = 0;
    for (let i = 0; i < this.pieceCount; i++) {
      if ((!have || have.has(i)) && (!wanted || wanted.has(i))) n += this.pieceSize(i);
    }
    return n;
  }

  /**
   * Bytes of piece `index` in files that are data, those for which `isPadding` (BEP 47 padding,
   * zeros never on disk nor counted in a size tdl shows) is false.
   */
  dataBytes(index: number, isPadding: (fileIndex: number) => boolean): number {
    let n = 0;
    for (const s of this.spans(index)) if (!isPadding(s.fileIndex)) n += s.length;
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
    const offsets = this.offsets;
    const lengths = this.lengths;
    while (pos < end && fi < this.fileCount) {
      const length = lengths[fi]!;
      const fileEnd = offsets[fi]! + length;
      if (length > 0 && pos < fileEnd) {
        const n = Math.min(end, fileEnd) - pos;
        out.push({
          fileIndex: fi,
          fileOffset: pos - offsets[fi]!,
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
    this.checkFile(fileIndex);
    const offset = this.offsets[fileIndex]!;
    const length = this.lengths[fileIndex]!;
    if (length === 0) return null;
    return {
      first: Math.floor(offset / this.pieceLength),
      last: Math.floor((offset + length - 1) / this.pieceLength),
    };
  }

  /** Index of the first non-empty file containing stream position `pos` (binary search). */
  private fileAt(pos: number): number {
    let lo = 0;
    let hi = this.fileCount - 1;
    const offsets = this.offsets;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (offsets[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    // Several files may start at `pos` when some are empty: step back to the first of them.
    while (lo > 0 && offsets[lo - 1]! === offsets[lo]!) lo--;
    return lo;
  }

  private checkFile(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.fileCount) {
      throw new RangeError(`no file ${i}`);
    }
  }

  private checkPiece(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.pieceCount) {
      throw new RangeError(`piece ${index} out of range 0..${this.pieceCount - 1}`);
    }
  }
}
