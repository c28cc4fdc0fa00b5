/**
 * Hashing pieces from disk: the start-up check's re-hash of what it cannot trust, `tdl verify`
 * and the check `tdl seed` makes before serving.
 *
 * The pieces are read in batches (a run of consecutive whole pieces, or a stretch of a piece too
 * big for one), each read while the one before is hashed. With a second core and enough bytes
 * to hash, a helper thread (hash-helper.ts) hashes half of them: the batches are dealt to two
 * lanes in turn (all the stretches of one piece to the same lane), each lane reading its own
 * batches into buffers of its own, the second lane's in shared memory for the helper to hash.
 */
import { createHash, type Hash } from 'node:crypto';
import os from 'node:os';
import { logger } from '../log.js';
import { sharedReadBuffer, readBuffer } from '../read-buffer.js';
import { Bitfield } from '../wire/bitfield.js';
import type { DiskStorage } from './disk.js';
import { HashHelper } from './hash-helper.js';
import type { Layout } from './layout.js';

const log = logger('tdl:hash');

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
 * Bytes to hash from which a helper thread is worth starting: it takes about 50 ms to boot, in
 * which this thread hashes some 80 MB.
 */
export const HELPER_MIN_BYTES = 64 * 1024 * 1024;

/**
 * Hash the given pieces (ascending) from storage, reading runs of consecutive pieces in batches
 * of up to `batchBytes` (HASH_BATCH_BYTES), and a piece bigger than that in stretches of that
 * size, hashed as they come, and reading each lane's next batch while hashing its current one.
 * Memory: two batch buffers per lane, whatever the piece length (two buffers of a piece each
 * took 128 MiB for 64 MiB pieces).
 */
export async function hashPieces(o: {
  storage: DiskStorage;
  layout: Layout;
  pieceHashes: Buffer;
  pieces: readonly number[];
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  batchBytes?: number;
  /** 2: with a helper thread, 1: without; default: 2 on two cores or more, for HELPER_MIN_BYTES. */
  threads?: 1 | 2;
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
  // The lanes' shares: a batch of whole pieces, or every stretch of one piece, in turn.
  const units: number[][] = [];
  for (const [i, b] of batches.entries()) {
    if (b.part && b.begin > 0) units[units.length - 1]!.push(i);
    else units.push([i]);
  }
  const threads = o.threads ?? (total >= HELPER_MIN_BYTES && os.availableParallelism() > 1 ? 2 : 1);
  const helper = threads > 1 && units.length > 1 ? new HashHelper() : null;
  const lanes = helper ? 2 : 1;
  log(
    'hashing %d pieces (%d bytes) in %d reads on %d thread(s)',
    o.pieces.length,
    total,
    batches.length,
    lanes,
  );

  let checked = 0;
  let validBytes = 0;
  /** Per lane: the bytes hashed of a piece it hashes in stretches. */
  const partBytes = [0, 0];
  const progress = () => o.onProgress?.(checked + partBytes[0]! + partBytes[1]!, total, validBytes);
  const judge = (p: number, digest: Buffer, nonZero: () => boolean) => {
    const size = storage.dataBytes(p);
    if (digest.equals(hashOf(o.pieceHashes, p))) {
      valid.set(p);
      validBytes += size;
    } else if (nonZero()) nonZeroInvalid.set(p);
    checked += size;
  };
  let stopped = false;

  const lane = async (k: number): Promise<void> => {
    const mine = units.filter((_, u) => u % lanes === k).flat();
    if (mine.length === 0) return;
    // The helper's lane reads into shared memory, which the helper hashes where it lies.
    const shared = helper !== null && k === 1;
    let bufSize = 0;
    for (const b of mine) bufSize = Math.max(bufSize, batches[b]!.length);
    const alloc = shared ? sharedReadBuffer : readBuffer;
    const bufs = [alloc(bufSize), alloc(bufSize)];
    const read = (i: number): Promise<Buffer> => {
      const { first, last, begin, length, part } = batches[mine[i]!]!;
      const into = bufs[i % 2];
      if (part) return storage.readPart(first, begin, length, into, () => absent.set(first));
      // Offsets in the batch's buffer, whose pieces all start a pieceLength apart.
      return storage.readPieces(first, last, into, (at, length) => {
        const to = Math.min(last, first + Math.floor((at + length - 1) / layout.pieceLength));
        for (let p = first + Math.floor(at / layout.pieceLength); p <= to; p++) absent.set(p);
      });
    };
    /** The piece hashed in stretches: its hash so far (on this thread), a byte not zero yet. */
    let partial: { hash: Hash | null; nonZero: boolean } | null = null;
    let next: Promise<Buffer> | null = read(0);
    try {
      for (let i = 0; i < mine.length; i++) {
        const data = await next!;
        next = null;
        if (stopped) return;
        if (o.signal?.aborted) throw abortReason(o.signal);
        next = i + 1 < mine.length ? read(i + 1) : null;
        const { first, last, begin, length, part } = batches[mine[i]!]!;
        if (part) {
          partial ??= { hash: shared ? null : createHash('sha1'), nonZero: false };
          const end = begin + length >= layout.pieceSize(first);
          let digest: Buffer | null = null;
          if (shared) digest = await helper.stretch(data, end);
          else if (end) digest = partial.hash!.update(data).digest();
          else partial.hash!.update(data);
          if (!partial.nonZero && !isAllZero(data)) partial.nonZero = true;
          if (!end) {
            // The piece's bytes hashed so far count as checked (not yet as valid): a 64 MiB
            // piece moves the progress in 4 MiB steps.
            partBytes[k] = Math.min(begin + length, storage.dataBytes(first));
            progress();
            continue;
          }
          const { nonZero } = partial;
          partial = null;
          partBytes[k] = 0;
          judge(first, digest!, () => nonZero);
        } else {
          const sizes: number[] = [];
          for (let p = first; p <= last; p++) sizes.push(layout.pieceSize(p));
          const digests = shared ? await helper.pieces(data, sizes) : null;
          let at = 0;
          for (let p = first; p <= last; p++) {
            const piece = data.subarray(at, at + sizes[p - first]!);
            const j = p - first;
            const digest = digests
              ? digests.subarray(20 * j, 20 * j + 20)
              : createHash('sha1').update(piece).digest();
            at += piece.length;
            judge(p, digest, () => !isAllZero(piece));
          }
        }
        progress();
      }
    } catch (e) {
      stopped = true;
      throw e;
    } finally {
      // A read still under way when we stop must not surface as an unhandled rejection.
      void next?.catch(() => {});
    }
  };

  try {
    const ends = await Promise.allSettled(Array.from({ length: lanes }, (_, k) => lane(k)));
    for (const e of ends) if (e.status === 'rejected') throw e.reason;
  } finally {
    await helper?.close();
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
