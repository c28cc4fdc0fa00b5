/**
 * The piece store: a piece whose blocks are all in is verified (SHA-1 against the torrent) and,
 * if good, written to disk. It is "have" as soon as it verified: announced to peers and served
 * to them, from its buffer (`readVerified`, a copy) until that is released, then from disk.
 *
 * Pieces verified but not yet written still hold their memory: `unwritten` counts their bytes,
 * and the picker counts them against its budget, so a slow disk slows the download down instead
 * of letting memory grow.
 *
 * A `tap` (the stream of `-o -`) may read a verified piece from the same buffer while it is
 * written: the buffer is `released` (back to the picker's pool) once both the disk write and the
 * tap are done with it (docs/DESIGN.md, "Piece buffers from the socket to the stream").
 */
import { hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { pieceHash, type Metainfo } from '../metainfo/torrent.js';
import { WriteCancelled } from '../storage/piece-writes.js';
import type { PieceInProgress } from './picker.js';

/**
 * Gets each verified piece's buffer (whole piece) while it goes to disk. Returns null when it
 * does not keep it, else a promise that settles once it is done with the bytes; until then they
 * stay unchanged. `room`: how many bytes of pieces it may keep waiting, all told.
 */
export type PieceTap = (index: number, data: Buffer, room: number) => Promise<void> | null;

/** Where verified pieces go (DiskStorage in production, doubles in tests). */
export interface PieceSink {
  writePiece(index: number, data: Buffer): Promise<void>;
  cancelQueuedWrites?(): number;
}

export interface PieceStoreEvents {
  /** The piece failed its hash check. */
  failed: [p: PieceInProgress];
  /** The piece verified and is on its way to disk. */
  verified: [p: PieceInProgress];
  /** The piece is on disk. */
  written: [p: PieceInProgress];
  /**
   * Nothing reads the piece's buffer any more (disk write and tap done): it may be reused.
   * Emitted just before `written` (`late` false), or after it when the tap was last (`late`).
   * Not emitted for a piece whose write failed.
   */
  released: [p: PieceInProgress, late: boolean];
  /** Writing failed: the download cannot go on. */
  error: [e: Error];
}

export class PieceStore extends EventEmitter<PieceStoreEvents> {
  private readonly writes = new Set<Promise<void>>();
  /** Buffers of verified pieces not yet released: what `readVerified` reads. */
  private readonly verifiedBuffers = new Map<number, Buffer>();
  /** Bytes of pieces verified and not yet on disk. */
  unwritten = 0;

  constructor(
    private readonly meta: Metainfo,
    private readonly sink: PieceSink,
    private readonly tap?: PieceTap,
    /** The `room` given to the tap. */
    private readonly tapRoom: () => number = () => Infinity,
  ) {
    super();
  }

  get writing(): number {
    return this.writes.size;
  }

  /**
   * Every block of a piece is in: verify it (about 0.15 ms per 256 KiB), then write it. Returns
   * whether it verified.
   */
  complete(p: PieceInProgress): boolean {
    // One-shot: no Hash object per piece (cheaper than createHash, most with small pieces).
    const digest = hash('sha1', p.buffer, 'buffer');
    if (!digest.equals(pieceHash(this.meta, p.index))) {
      this.emit('failed', p);
      return false;
    }
    this.unwritten += p.size;
    const buffer = p.buffer;
    this.verifiedBuffers.set(p.index, buffer);
    this.emit('verified', p);
    // Readers of the buffer: the disk write, and the tap if it keeps it.
    let readers = 1;
    let onDisk = false;
    const done = () => {
      if (--readers > 0) return;
      this.verifiedBuffers.delete(p.index);
      this.emit('released', p, onDisk);
    };
    const job = this.sink.writePiece(p.index, buffer).then(
      () => {
        this.unwritten -= p.size;
        done();
        onDisk = true;
        this.emit('written', p);
      },
      (e: unknown) => {
        this.unwritten -= p.size;
        this.verifiedBuffers.delete(p.index);
        // Dropped by a run that stops (cancelQueued): not on disk, and no fault.
        if (e instanceof WriteCancelled) return;
        this.emit('error', e instanceof Error ? e : new Error(String(e)));
      },
    );
    const tapped = this.tap?.(p.index, buffer, this.tapRoom()) ?? null;
    if (tapped) {
      readers++;
      void tapped.then(done, done);
    }
    this.writes.add(job);
    void job.finally(() => this.writes.delete(job));
    return true;
  }

  /**
   * A copy of bytes [begin, begin + length) of verified piece `index` while its buffer is still
   * held (on its way to disk); null once it is released (read it from disk then) or when the
   * piece is not verified. A copy: the buffer goes back to the picker's pool once released, while
   * a socket may still hold what we hand it.
   */
  readVerified(index: number, begin: number, length: number): Buffer | null {
    const b = this.verifiedBuffers.get(index);
    if (!b || begin < 0 || length < 0 || begin + length > b.length) return null;
    return Buffer.from(b.subarray(begin, begin + length));
  }

  /**
   * Drop the writes queued and not begun (a run that stops): those pieces are never `written`,
   * so nothing records them; a later run fetches them again. Returns how many.
   */
  cancelQueued(): number {
    return this.sink.cancelQueuedWrites?.() ?? 0;
  }

  /** Wait for every write under way. */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }
}
