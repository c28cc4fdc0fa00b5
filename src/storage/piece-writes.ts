/**
 * Writing verified pieces to their files (DiskStorage's writes). A piece is cut into runs, one
 * per file it touches; runs are started WRITE_PARALLEL at a time over all pieces, oldest piece
 * first, and a piece settles with its last run (with the first error, if any).
 *
 * Before its first change a file still under its final name is moved to its working name (once,
 * however many runs wait for it). A run that reaches the end of what tdl has written to a file
 * checks the file's size first: someone else's truncation would otherwise be hidden by the write
 * that regrows the file. Small runs are written inline (synchronously) while the disk answers
 * fast (see Inline in fs-util.ts).
 */
import { writeSync, type BigIntStats } from 'node:fs';
import { rename } from 'node:fs/promises';
import { logger } from '../log.js';
import { fdCall, INLINE_MAX_BYTES, toDiskError, type Inline } from './fs-util.js';
import type { Span } from './layout.js';
import { OutputChangedError } from './stamps.js';

const log = logger('tdl:storage');

/** Runs of pieces written at once, over all pieces (libuv runs four file operations at a time). */
export const WRITE_PARALLEL = 8;

/**
 * A queued piece write dropped before any of its bytes went out (`cancelQueued`): the piece is
 * not on disk, and is not recorded anywhere as written.
 */
export class WriteCancelled extends Error {
  constructor(readonly index: number) {
    super(`the write of piece ${index} was not started`);
    this.name = 'WriteCancelled';
  }
}

/** What the writes need of the storage. */
export interface WriteHost {
  readonly inline: Inline;
  withFile<T>(i: number, fn: (fd: number) => Promise<T>): Promise<T>;
  statHandle(fd: number): Promise<BigIntStats>;
  /** Smallest size file `i` must have: its size when found, grown by tdl's writes. */
  knownSize(i: number): number;
  /** File `i` was written up to `end`: its known size grows, its stamp and durability change. */
  written(i: number, end: number): void;
  /** File `i` is under its working name (else its final one, to be moved before a change). */
  atWorkingName(i: number): boolean;
  /** File `i` was moved to its working name. */
  movedToWorkingName(i: number): void;
  finalPath(i: number): string;
  partPath(i: number): string;
  currentPath(i: number): string | null;
}

/** A piece being written: its runs in its files, started in order. */
interface PieceWrite {
  index: number;
  data: Buffer;
  spans: readonly Span[];
  /** Next run to start. */
  next: number;
  /** Runs not finished. */
  left: number;
  error: unknown;
  done: () => void;
  fail: (e: unknown) => void;
}

export class PieceWrites {
  /** Pieces whose runs wait to be written, oldest first. */
  private readonly queue: PieceWrite[] = [];
  private running = 0;
  /** Moves to the working name under way (see ensureWorkingName). */
  private readonly renames = new Map<number, Promise<void>>();

  constructor(private readonly host: WriteHost) {}

  /** Write these spans of piece `index` (its bytes in `data`) to their files. */
  write(index: number, data: Buffer, spans: readonly Span[]): Promise<void> {
    return new Promise<void>((done, fail) => {
      this.queue.push({ index, data, spans, next: 0, left: spans.length, error: null, done, fail });
      this.pump();
    });
  }

  /**
   * Drop the pieces waiting whose writes have not begun (each rejects with WriteCancelled);
   * returns how many. For a run that stops: with thousands of small files a queue of a few MiB
   * is thousands of files to open and write, seconds after Ctrl-C, for pieces a later run
   * fetches again in less. A piece whose first run has started is written whole.
   */
  cancelQueued(): number {
    const dropped = this.queue.filter((w) => w.next === 0);
    if (dropped.length === 0) return 0;
    const started = this.queue.filter((w) => w.next > 0);
    this.queue.length = 0;
    this.queue.push(...started);
    for (const w of dropped) w.fail(new WriteCancelled(w.index));
    return dropped.length;
  }

  /**
   * Start queued runs, WRITE_PARALLEL at a time over all pieces, oldest piece first. A piece of
   * many small files has hundreds of runs: started all at once, pieces in flight would queue
   * thousands of file operations (and the objects that wait on each) in libuv's four threads.
   */
  private pump(): void {
    while (this.running < WRITE_PARALLEL && this.queue.length > 0) {
      const w = this.queue[0]!;
      const s = w.spans[w.next++]!;
      if (w.next === w.spans.length) this.queue.shift();
      this.running++;
      this.writeSpan(w.index, w.data, s).then(
        () => this.spanDone(w, null),
        (e: unknown) => this.spanDone(w, e ?? new Error('write failed')),
      );
    }
  }

  /** A run of piece write `w` ended: the piece settles (first error, if any) with its last run. */
  private spanDone(w: PieceWrite, error: unknown): void {
    this.running--;
    w.error ??= error;
    if (--w.left === 0) {
      if (w.error === null) w.done();
      else w.fail(w.error);
    }
    this.pump();
  }

  private async writeSpan(index: number, data: Buffer, s: Span): Promise<void> {
    const host = this.host;
    await host.inline.pace();
    const fi = s.fileIndex;
    await this.ensureWorkingName(fi);
    try {
      await host.withFile(fi, async (fd) => {
        // Only a write that reaches the end of what tdl has written could regrow a file that
        // someone else truncated, and hide the hole: only then is its size checked. (A
        // truncation that no write hides is found by the next checkIntact.)
        const known = host.knownSize(fi);
        if (known > 0 && s.fileOffset + s.length >= known) {
          const st = await host.statHandle(fd);
          if (st.size < known) {
            throw new OutputChangedError(
              `${host.currentPath(fi)} was truncated during the download (${st.size} bytes, expected ${known})`,
            );
          }
        }
        const inline = host.inline.on && s.length <= INLINE_MAX_BYTES;
        let done = 0;
        while (done < s.length) {
          const at = s.pieceOffset + done;
          const n = s.length - done;
          const bytesWritten = inline
            ? host.inline.run(() => writeSync(fd, data, at, n, s.fileOffset + done))
            : await fdCall.write(fd, data, at, n, s.fileOffset + done);
          if (bytesWritten <= 0) throw new Error('short write');
          done += bytesWritten;
        }
      });
    } catch (e) {
      throw toDiskError(e, `cannot write piece ${index} to ${host.currentPath(fi)}`);
    }
    host.written(fi, s.fileOffset + s.length);
  }

  /** A file still under its final name is moved to its working name before it is changed. */
  private ensureWorkingName(fi: number): Promise<void> {
    if (this.host.atWorkingName(fi)) return Promise.resolve();
    let r = this.renames.get(fi);
    if (!r) {
      r = (async () => {
        const from = this.host.finalPath(fi);
        const to = this.host.partPath(fi);
        try {
          await rename(from, to);
        } catch (e) {
          throw toDiskError(e, `cannot rename ${from} to ${to}`);
        }
        this.host.movedToWorkingName(fi);
        log('moved %s to its working name', from);
      })();
      this.renames.set(fi, r);
      // Done: nothing to keep. A failed rename is retried by the next write.
      void r.then(
        () => this.renames.delete(fi),
        () => this.renames.delete(fi),
      );
    }
    return r;
  }
}
