/**
 * `tdl download <torrent> -o -`: one file of the torrent written in order to a byte sink (stdout)
 * while the download runs.
 *
 * The download itself goes to a working copy on disk (`streamWorkDir`), laid out like any `-o`
 * download, so verification, resume and serving work unchanged. A verified piece is offered to
 * the stream (`take`) in the memory it was hashed in: the piece at the cursor is written to the
 * sink from that memory, in one write, when the stream is not busy, and a few pieces just ahead
 * of it (at most `HOLD_BYTES`) are kept until their turn; the piece buffer goes back to the
 * download once the sink's write callback has fired. Pieces it declined (early, or the stream
 * was busy) are read back from the working copy once on disk: positional reads of at most
 * `READ_CHUNK` bytes (and a piece) into reused buffers, issued ahead in order (at most
 * `READ_AHEAD_BYTES`) while the sink writes the chunks before; a chunk is written once `drain`
 * said the sink has room again, so memory stays bounded whatever the file size and however slow
 * the reader. As the cursor (the next piece to write) moves, `onCursor` tells the
 * picker, which fetches the pieces just ahead of it first; `onStall` says when the stream has
 * waited too long on one piece (see docs/DESIGN.md, "Streaming to stdout" and "Piece buffers
 * from the socket to the stream").
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { bookkeepingSuffixes } from './output.js';
import { logger } from '../log.js';
import { readBuffer } from '../read-buffer.js';
import { cacheFolder } from '../dht/cache.js';
import { DiskError, StdoutClosedError, stdoutWriteError } from '../errors.js';
import { makeFolders, toDiskError } from './fs-util.js';
import type { Layout } from './layout.js';

const log = logger('tdl:stream');

/** The picker fetches this many bytes ahead of the stream's write position in order... */
export const STREAM_WINDOW_BYTES = 64 * 1024 * 1024;
/** ...and at least this many pieces, whatever their size. */
export const MIN_WINDOW_PIECES = 4;
/** Largest read from disk at once, and so the largest chunk handed to the sink. */
export const READ_CHUNK = 1024 * 1024;
/**
 * Pieces read back are read ahead, in order, into chunk buffers of at most this many bytes in
 * all (at least two buffers), reused once the sink has taken their bytes (its write callback):
 * one read at a time waited a thread-pool round trip per chunk, and a stream that had fallen
 * behind read back slower than the download went. Fresh buffers per chunk cost tens of MB of
 * garbage.
 */
export const READ_AHEAD_BYTES = 4 * 1024 * 1024;
/**
 * Verified pieces ahead of the cursor kept in memory until their turn: at most this many bytes,
 * and at most the `room` the download gives (half its memory budget, in which they count until
 * released). The piece at the cursor, taken when the stream is idle, is written at once and
 * does not count.
 */
export const HOLD_BYTES = 32 * 1024 * 1024;
/** The piece at the cursor is reported (`onStall`) once the stream has waited on it this long. */
export const STALL_MS = 2_000;

/** Pieces in the priority window for this piece length. */
export function windowPieces(pieceLength: number): number {
  return Math.max(MIN_WINDOW_PIECES, Math.ceil(STREAM_WINDOW_BYTES / pieceLength));
}

/**
 * The working copy of a streamed torrent: `$XDG_CACHE_HOME/tdl/stream/<info hash hex>/`, else
 * `~/.cache/tdl/stream/…` (the folder of the DHT cache file).
 */
export function streamWorkDir(infoHashHex: string, env: NodeJS.ProcessEnv = process.env): string {
  const folder = cacheFolder(env);
  if (folder === null) {
    throw new DiskError(
      '-o - keeps its working copy under $XDG_CACHE_HOME/tdl or ~/.cache/tdl, and neither is ' +
        'known (HOME is not an absolute path and the user has no home folder): set ' +
        'XDG_CACHE_HOME to an absolute path',
    );
  }
  return join(folder, 'stream', infoHashHex.toLowerCase());
}

/**
 * Create a working folder (owner only); DiskError when it cannot be. Resolves with the first
 * folder it made (`dir` itself, or a parent such as `~/.cache/tdl` on a first run), undefined
 * when `dir` was there: see removeMadeParents.
 */
export async function makeWorkDir(dir: string): Promise<string | undefined> {
  try {
    return await makeFolders(dir, 0o700);
  } catch (e) {
    throw toDiskError(e, `cannot create the working folder ${dir}`);
  }
}

/**
 * Once the working folder `dir` is gone: the folders above it that makeWorkDir made (`first` the
 * highest), as far as they are empty (another run's working copy, or the DHT's cache, keeps
 * them). Best effort.
 */
export async function removeMadeParents(dir: string, first: string | undefined): Promise<void> {
  if (first === undefined || first === dir) return;
  await removeEmptyUp(dirname(dir), (d) => d === first || d.startsWith(first + '/'));
}

/** rmdir `from`, then its parents while `within` holds of them, up to the first not empty. */
async function removeEmptyUp(from: string, within: (d: string) => boolean): Promise<void> {
  for (let d = from; within(d); d = dirname(d)) {
    const removed = await rmdir(d).then(
      () => true,
      () => false,
    );
    if (!removed) return;
  }
}

/** Remove a working folder and all it holds (best effort: what is left is only cache). */
export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}

/**
 * A stream of `file` (its final path in the working folder `dir`, `working` its working path: see
 * partPathOf) has ended well: its working copy goes. Other files' working copies (streams of
 * other files of the torrent, interrupted) stay, with the side files they need; a folder left
 * with no data at all goes whole. Best effort.
 */
export async function removeStreamed(dir: string, file: string, working: string): Promise<void> {
  await rm(file, { force: true }).catch(() => {});
  await rm(working, { force: true }).catch(() => {});
  let names: string[];
  try {
    names = (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((d) => !d.isDirectory())
      .map((d) => d.name);
  } catch {
    return;
  }
  const own = bookkeepingSuffixes();
  if (names.every((n) => own.some((suffix) => n.endsWith(suffix)))) {
    await removeWorkDir(dir);
    return;
  }
  // Folders the streamed file alone used.
  await removeEmptyUp(dirname(file), (d) => d.startsWith(dir + '/') && d !== dir);
}

/**
 * What the stream writes to: process.stdout, or any Writable, or an `FdSink`. A write callback
 * says the chunk's memory is free again; a sink for which that does not mean the bytes were
 * written has `flush`, whose callback says everything before it was written.
 */
export interface ByteSink {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  flush?(cb: (err?: Error | null) => void): void;
  on(event: 'drain' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  off(event: 'drain' | 'close', fn: () => void): unknown;
  off(event: 'error', fn: (err: Error) => void): unknown;
}

export interface StreamOutOptions {
  layout: Layout;
  /** The file to write: its place in the torrent's byte space. */
  file: { offset: number; length: number };
  /**
   * Read `length` bytes at `begin` of a piece that is verified and on disk, into `into` (whose
   * length is at least `length`); returns the bytes.
   */
  read: (index: number, begin: number, length: number, into: Buffer) => Promise<Buffer>;
  out: ByteSink;
  /** The next piece to write changed (also called once by `start`). */
  onCursor?: (piece: number) => void;
  /**
   * The stream has waited `stallMs` (default STALL_MS) for the piece at the cursor to reach the
   * disk; called again every `stallMs` while it still waits.
   */
  onStall?: (piece: number) => void;
  stallMs?: number;
}

export class StreamOut {
  /** The first and last piece holding bytes of the file (last < first: an empty file). */
  readonly first: number;
  readonly last: number;
  /** Bytes of the file written to the sink so far. */
  written = 0;
  /** Pieces written from the memory they were verified in, and read back from disk. */
  fromMemory = 0;
  readBack = 0;
  private cursor: number;
  private readonly onDisk: Uint8Array;
  private pumping = false;
  private started = false;
  private stopped = false;
  /** Verified pieces taken from the download (`take`), not yet handed to the sink. */
  private readonly held = new Map<number, { data: Buffer; release: () => void }>();
  /** Bytes of the pieces taken and not given back: held, or handed to the sink. */
  private heldBytes = 0;
  private heldPeak = 0;
  private failure: Error | null = null;
  /** The pump waiting for a chunk buffer back from the sink, or for the sink's `drain`. */
  private wakeBuffer: (() => void) | null = null;
  private wakeDrain: (() => void) | null = null;
  /** The sink's last `write()` returned false and no `drain` came since. */
  private full = false;
  /** Chunk buffers not held by the sink or a read, and how many exist (see READ_AHEAD_BYTES). */
  private readonly free: Buffer[] = [];
  private buffers = 0;
  /** Reads under way or done, in the order they are written, and where the next one starts. */
  private readonly ahead: ReadAhead[] = [];
  private aheadAt: { index: number; begin: number } | null = null;
  /** When the cursor last moved (or the stream started), for `onStall`. */
  private movedAt = 0;
  private stallTimer: NodeJS.Timeout | null = null;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;
  /** Resolves once the last byte was written and flushed; rejects if the sink or a read fails. */
  readonly done: Promise<void>;
  private readonly onError = (e: Error) => this.fail(stdoutWriteError(e));
  private readonly onClose = () => this.fail(new StdoutClosedError('closed'));

  constructor(private readonly o: StreamOutOptions) {
    const { layout, file } = o;
    if (file.length > 0) {
      this.first = Math.floor(file.offset / layout.pieceLength);
      this.last = Math.floor((file.offset + file.length - 1) / layout.pieceLength);
    } else {
      this.first = 0;
      this.last = -1;
    }
    this.cursor = this.first;
    this.onDisk = new Uint8Array(Math.max(0, this.last - this.first + 1));
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody may be awaiting yet when it fails: not an unhandled rejection.
    this.done.catch(() => {});
  }

  /** The next piece to write (past `last` once everything was handed to the sink). */
  get position(): number {
    return this.cursor;
  }

  /** Start with the pieces already on disk (`has`), and write what can be written. */
  start(has: { has(i: number): boolean }): void {
    this.started = true;
    this.o.out.on('drain', this.onDrain);
    this.o.out.on('error', this.onError);
    this.o.out.on('close', this.onClose);
    for (let p = this.first; p <= this.last; p++) if (has.has(p)) this.onDisk[p - this.first] = 1;
    this.o.onCursor?.(this.cursor);
    this.movedAt = Date.now();
    if (this.o.onStall) {
      const stallMs = this.o.stallMs ?? STALL_MS;
      this.stallTimer = setInterval(() => this.checkStall(stallMs), Math.max(1, stallMs / 2));
      this.stallTimer.unref();
    }
    void this.pump();
  }

  private checkStall(stallMs: number): void {
    const c = this.cursor;
    if (this.stopped || c > this.last || this.onDisk[c - this.first] || this.held.has(c)) return;
    if (Date.now() - this.movedAt < stallMs) return;
    this.movedAt = Date.now();
    this.o.onStall?.(c);
  }

  /** Piece `index` is verified and on disk. */
  have(index: number): void {
    if (index < this.first || index > this.last) return;
    this.onDisk[index - this.first] = 1;
    if (index === this.cursor) void this.pump();
  }

  /**
   * A verified piece, whole, in the memory it was hashed in. Returns null when the stream does
   * not take it (it reads the piece back from disk once `have` says it is there); else a promise
   * that resolves once the stream is done with `data` (the sink's write callback fired, or the
   * stream stopped), until when `data` must stay as it is. Taken: the piece at the cursor when
   * the stream holds nothing (written at once, in one write), and others of its pieces from the
   * cursor on while all it holds or has handed to the sink fits in `room` (and HOLD_BYTES).
   */
  take(index: number, data: Buffer, room = HOLD_BYTES): Promise<void> | null {
    if (!this.started || this.stopped || index < this.cursor || index > this.last) return null;
    if (this.held.has(index)) return null;
    // The piece at the cursor when the stream holds nothing, whatever its size; else within room.
    const first = index === this.cursor && this.heldBytes === 0;
    if (!first && this.heldBytes + data.length > Math.min(room, HOLD_BYTES)) return null;
    return new Promise<void>((resolve) => {
      let given = false;
      const release = () => {
        if (given) return;
        given = true;
        this.heldBytes -= data.length;
        resolve();
      };
      this.held.set(index, { data, release });
      this.heldBytes += data.length;
      this.heldPeak = Math.max(this.heldPeak, this.heldBytes);
      if (index === this.cursor) void this.pump();
    });
  }

  /** Stop writing (the download ended some other way); `done` settles no more. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // Pieces not handed to the sink go back now; one the sink holds, once its callback fires.
    for (const h of this.held.values()) h.release();
    this.held.clear();
    this.detach();
    this.wakeBuffer?.();
    this.wakeDrain?.();
  }

  private detach(): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = null;
    this.o.out.off('error', this.onError);
    this.o.out.off('close', this.onClose);
    this.o.out.off('drain', this.onDrain);
  }

  private readonly onDrain = () => {
    this.full = false;
    this.wakeDrain?.();
  };

  private fail(e: Error): void {
    if (this.stopped || this.failure) return;
    this.failure = e;
    log('stream stopped: %s', e.message);
    this.stop();
    this.rejectDone(e);
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      const { layout, file } = this.o;
      const fileEnd = file.offset + file.length;
      while (!this.stopped && this.cursor <= this.last) {
        const held = this.held.get(this.cursor);
        if (!held && !this.onDisk[this.cursor - this.first]) break;
        const pieceStart = this.cursor * layout.pieceLength;
        const from = Math.max(file.offset, pieceStart);
        const to = Math.min(fileEnd, pieceStart + layout.pieceSize(this.cursor));
        if (held) {
          // Straight from the piece's memory: the file's part of it, one write, no copy.
          this.held.delete(this.cursor);
          this.fromMemory++;
          const chunk = held.data.subarray(from - pieceStart, to - pieceStart);
          this.written += to - from;
          if (this.cursor === this.last) {
            this.cursor = this.last + 1;
            this.o.out.write(chunk, (err) => {
              held.release();
              this.flushed(err);
            });
            return;
          }
          // The pieces in memory go to the sink at once, full or not (what they queue is
          // bounded by `take`'s room): the reader never waits for a refill.
          this.full = !this.o.out.write(chunk, () => held.release());
        }
        if (!held) this.readBack++;
        for (let at = held ? to : from; at < to && !this.stopped;) {
          const n = Math.min(this.chunkSize, to - at);
          // Read ahead (in order, up to READ_AHEAD_BYTES) while this piece's chunks go out.
          const chunk = await this.nextRead(this.cursor, at - pieceStart, n);
          if (!chunk) return;
          if (this.stopped) return;
          // The chunk was read while the sink wrote the one before: write it once there is room.
          await this.drained();
          if (this.stopped) return;
          at += n;
          this.written += n;
          const last = this.cursor === this.last && at === to;
          if (last) {
            // The run is done only once the last byte is flushed: the write's own callback.
            this.cursor = this.last + 1;
            this.o.out.write(chunk.data, (err) => this.flushed(err));
            return;
          }
          this.full = !this.o.out.write(chunk.data, () => this.release(chunk.buf));
        }
        if (this.stopped) return;
        this.cursor++;
        this.movedAt = Date.now();
        this.o.onCursor?.(this.cursor);
      }
      // An empty file: nothing to write.
      if (this.last < this.first) this.finish();
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.pumping = false;
    }
  }

  /** The last chunk was given to the sink: done once the sink has written it out. */
  private flushed(err: Error | null | undefined): void {
    if (err) return this.fail(stdoutWriteError(err));
    const { out } = this.o;
    if (!out.flush) return this.finish();
    out.flush((e) => (e ? this.fail(stdoutWriteError(e)) : this.finish()));
  }

  private finish(): void {
    if (this.stopped) return;
    log(
      'all %d bytes written and flushed: %d pieces from memory (at most %d bytes held), %d read back from disk',
      this.written,
      this.fromMemory,
      this.heldPeak,
      this.readBack,
    );
    this.stop();
    this.resolveDone();
  }

  /** Bytes of the file read back at once: at most READ_CHUNK, and never more than a piece. */
  private get chunkSize(): number {
    return Math.max(1, Math.min(READ_CHUNK, this.o.layout.pieceLength, this.o.file.length));
  }

  /**
   * The chunk of piece `index` at `begin` (of `n` bytes), read back from disk: the first of the
   * reads ahead, which this issues as well for the chunks after it, in order, while they are on
   * disk and not held, and buffers are free. Null once the stream stopped.
   */
  private async nextRead(index: number, begin: number, n: number): Promise<Chunk | null> {
    let r = this.ahead[0];
    if (!r || r.index !== index || r.begin !== begin || r.n !== n) {
      // Not what was read ahead: start over from here; the buffers come back once read.
      for (const d of this.ahead.splice(0))
        void d.data.then(
          () => this.release(d.buf),
          () => this.release(d.buf),
        );
      this.aheadAt = { index, begin };
      if (!(await this.readAhead(true))) return null;
      r = this.ahead[0]!;
    }
    this.ahead.shift();
    this.readAhead(false);
    const data = await r.data;
    return { buf: r.buf, data };
  }

  /**
   * Issue reads from `aheadAt` on while buffers are free (with `wait`, waits for one buffer at
   * least; false if the stream stopped meanwhile).
   */
  private readAhead(wait: true): Promise<boolean>;
  private readAhead(wait: false): void;
  private readAhead(wait: boolean): Promise<boolean> | void {
    const issue = (buf: Buffer): void => {
      const { index, begin } = this.aheadAt!;
      const { layout, file } = this.o;
      const pieceStart = index * layout.pieceLength;
      const to = Math.min(file.offset + file.length, pieceStart + layout.pieceSize(index));
      const n = Math.min(this.chunkSize, to - pieceStart - begin);
      const data = this.o.read(index, begin, n, buf);
      // A failed read surfaces where it is awaited; not an unhandled rejection meanwhile.
      data.catch(() => {});
      this.ahead.push({ index, begin, n, buf, data });
      this.aheadAt = begin + n < to - pieceStart ? { index, begin: begin + n } : nextPiece(index);
    };
    const nextPiece = (index: number) => {
      const next = index + 1;
      const start = Math.max(this.o.file.offset, next * this.o.layout.pieceLength);
      return { index: next, begin: start - next * this.o.layout.pieceLength };
    };
    // Only pieces that are on disk and that the stream does not hold are read ahead, from the
    // cursor on (one written from memory meanwhile is behind it: not read back for nothing).
    const readable = () => {
      const at = this.aheadAt;
      return (
        at !== null &&
        !this.stopped &&
        at.index >= this.cursor &&
        at.index <= this.last &&
        this.onDisk[at.index - this.first] === 1 &&
        !this.held.has(at.index)
      );
    };
    const more = (): void => {
      while (readable()) {
        const b = this.free.pop() ?? this.newBuffer();
        if (!b) return;
        issue(b);
      }
    };
    if (!wait) return more();
    return (async () => {
      while (!this.stopped) {
        more();
        if (this.ahead.length > 0) return true;
        await new Promise<void>((resolve) => {
          this.wakeBuffer = () => {
            this.wakeBuffer = null;
            resolve();
          };
        });
      }
      return false;
    })();
  }

  /** A new chunk buffer, while fewer than READ_AHEAD_BYTES' worth (at least 2) exist. */
  private newBuffer(): Buffer | null {
    const size = this.chunkSize;
    if (this.buffers >= Math.max(2, Math.floor(READ_AHEAD_BYTES / size))) return null;
    this.buffers++;
    return readBuffer(size);
  }

  /** The sink is done with this buffer's bytes. */
  private release(buf: Buffer): void {
    this.free.push(buf);
    if (this.wakeBuffer) this.wakeBuffer();
    else if (this.pumping) this.readAhead(false);
  }

  /**
   * Wait until the sink has room: at once unless its last `write()` returned false and no
   * `drain` came since (or until the stream stops); a buffer given back does not count.
   */
  private drained(): Promise<void> {
    if (!this.full || this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wakeDrain = () => {
        this.wakeDrain = null;
        resolve();
      };
    });
  }
}

interface ReadAhead {
  index: number;
  begin: number;
  n: number;
  buf: Buffer;
  data: Promise<Buffer>;
}

interface Chunk {
  buf: Buffer;
  data: Buffer;
}
