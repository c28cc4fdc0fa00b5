/**
 * Hashing pieces from disk: the start-up check's re-hash of what it cannot trust, `tdl verify`
 * and the check `tdl seed` makes before serving.
 */
import { createHash, type Hash } from 'node:crypto';
import { readBuffer } from '../read-buffer.js';
import { Bitfield } from '../wire/bitfield.js';
import type { DiskStorage } from './disk.js';
import type { Layout } from './layout.js';

/** Bytes read at once when hashing consecutive pieces, or a piece bigger than this, in stretches. */
export const HASH_BATCH_BYTES = 4 * 1024 * 1024;

export interface HashResult {
  /** Pieces whose bytes match their hash. */
  valid: Bitfield;
  /**
   * Pieces some of whose bytes are not on disk (past a file's end, a file not there) and were
   * hashed as zeros: whether valid or not, they are not present.
   */
  absent: Bitfield;
  /** Pieces that failed and hold at least one non-zero byte (other data, not a hole). */
  nonZeroInvalid: Bitfield;
  hashedPieces: number;
  /** The files' bytes of the pieces hashed (BEP 47 padding left out). */
  hashedBytes: number;
}

/** Bytes of the pieces to hash checked so far, of them all, and found valid: padding left out. */
export type ProgressFn = (checkedBytes: number, totalBytes: number, validBytes: number) => void;

/**
 * One read of the check: the whole pieces `first..last` (consecutive), or, for a piece over the
 * batch size, `length` bytes of piece `first` (= `last`) at `begin`.
 */
interface Batch {
  first: number;
  last: number;
  begin: number;
  length: number;
  /** A stretch of one piece rather than whole pieces. */
  part: boolean;
}

/**
 * Hash the given pieces (ascending) from storage, reading runs of consecutive pieces in batches
 * of up to `batchBytes` (HASH_BATCH_BYTES), and a piece bigger than that in stretches of that
 * size, hashed as they come, and reading the next batch while hashing the current one. Memory:
 * two batch buffers, whatever the piece length (two buffers of a piece each took 128 MiB for
 * 64 MiB pieces).
 */
export async function hashPieces(o: {
  storage: DiskStorage;
  layout: Layout;
  pieceHashes: Buffer;
  pieces: readonly number[];
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  batchBytes?: number;
}): Promise<HashResult> {
  const { storage, layout } = o;
  const batchBytes = Math.max(1, o.batchBytes ?? HASH_BATCH_BYTES);
  const valid = new Bitfield(layout.pieceCount);
  const absent = new Bitfield(layout.pieceCount);
  const nonZeroInvalid = new Bitfield(layout.pieceCount);
  const batches: Batch[] = [];
  // Progress counts the files' bytes, as every size tdl shows: BEP 47 padding is not data.
  let total = 0;
  for (const p of o.pieces) total += storage.dataBytes(p);
  for (let k = 0; k < o.pieces.length;) {
    const first = o.pieces[k]!;
    let last = first;
    let bytes = layout.pieceSize(first);
    k++;
    if (bytes > batchBytes) {
      for (let begin = 0; begin < bytes; begin += batchBytes) {
        const length = Math.min(batchBytes, bytes - begin);
        batches.push({ first, last, begin, length, part: true });
      }
      continue;
    }
    while (
      k < o.pieces.length &&
      o.pieces[k] === last + 1 &&
      bytes + layout.pieceSize(last + 1) <= batchBytes
    ) {
      last++;
      bytes += layout.pieceSize(last);
      k++;
    }
    batches.push({ first, last, begin: 0, length: bytes, part: false });
  }
  let bufSize = 0;
  for (const b of batches) bufSize = Math.max(bufSize, b.length);
  const bufs = batches.length > 0 ? [readBuffer(bufSize), readBuffer(bufSize)] : [];
  const read = (b: number) => {
    const { first, last, begin, length, part } = batches[b]!;
    const into = bufs[b % 2];
    if (part) return storage.readPart(first, begin, length, into, () => absent.set(first));
    // Offsets in the batch's buffer, whose pieces all start a pieceLength apart.
    return storage.readPieces(first, last, into, (at, length) => {
      const to = Math.min(last, first + Math.floor((at + length - 1) / layout.pieceLength));
      for (let p = first + Math.floor(at / layout.pieceLength); p <= to; p++) absent.set(p);
    });
  };
  /** The piece hashed in stretches: its hash so far, and whether a byte of it was not zero. */
  let partial: { hash: Hash; nonZero: boolean } | null = null;
  const judge = (p: number, digest: Buffer, nonZero: () => boolean) => {
    const size = storage.dataBytes(p);
    if (digest.equals(hashOf(o.pieceHashes, p))) {
      valid.set(p);
      validBytes += size;
    } else if (nonZero()) nonZeroInvalid.set(p);
    checked += size;
  };
  let checked = 0;
  let validBytes = 0;
  let next: Promise<Buffer> | null = batches.length > 0 ? read(0) : null;
  try {
    for (let b = 0; b < batches.length; b++) {
      const data = await next!;
      next = b + 1 < batches.length ? read(b + 1) : null;
      if (o.signal?.aborted) throw abortReason(o.signal);
      const { first, last, begin, length, part } = batches[b]!;
      if (part) {
        partial ??= { hash: createHash('sha1'), nonZero: false };
        partial.hash.update(data);
        if (!partial.nonZero && !isAllZero(data)) partial.nonZero = true;
        if (begin + length < layout.pieceSize(first)) {
          // The piece's bytes hashed so far count as checked (not yet as valid): a 64 MiB piece
          // moves the progress in 4 MiB steps.
          o.onProgress?.(
            checked + Math.min(begin + length, storage.dataBytes(first)),
            total,
            validBytes,
          );
          continue;
        }
        const { hash, nonZero } = partial;
        partial = null;
        judge(first, hash.digest(), () => nonZero);
      } else {
        let at = 0;
        for (let p = first; p <= last; p++) {
          const piece = data.subarray(at, at + layout.pieceSize(p));
          at += piece.length;
          judge(p, createHash('sha1').update(piece).digest(), () => !isAllZero(piece));
        }
      }
      o.onProgress?.(checked, total, validBytes);
    }
  } finally {
    // A read still under way when we stop must not surface as an unhandled rejection.
    void next?.catch(() => {});
  }
  return { valid, absent, nonZeroInvalid, hashedPieces: o.pieces.length, hashedBytes: checked };
}

const ZERO = Buffer.alloc(64 * 1024);

/** SHA-1 of zeros, per piece size (a torrent has two at most). */
const zeroHashes = new Map<number, Buffer>();

/**
 * Is the hash of piece `p` that of zeros? A piece of BEP 47 padding only is then present: its
 * bytes are zeros by definition, never on disk, so nothing is read to know it (one SHA-1 of
 * zeros per piece size, however many such pieces).
 */
export function isZeroPiece(layout: Layout, pieceHashes: Buffer, p: number): boolean {
  const size = layout.pieceSize(p);
  let want = zeroHashes.get(size);
  if (!want) {
    const h = createHash('sha1');
    for (let left = size; left > 0; left -= ZERO.length) {
      h.update(ZERO.subarray(0, Math.min(left, ZERO.length)));
    }
    want = h.digest();
    if (zeroHashes.size >= 8) zeroHashes.clear();
    zeroHashes.set(size, want);
  }
  return want.equals(hashOf(pieceHashes, p));
}

/** Piece `p`'s SHA-1 in the torrent's `pieces`. */
export function hashOf(pieceHashes: Buffer, p: number): Buffer {
  return pieceHashes.subarray(p * 20, p * 20 + 20);
}

export function isAllZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZERO.length) {
    const n = Math.min(ZERO.length, buf.length - off);
    if (buf.compare(ZERO, 0, n, off, off + n) !== 0) return false;
  }
  return true;
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error('aborted');
}
