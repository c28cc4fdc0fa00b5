/**
 * A byte sink that writes to a file descriptor (stdout with `-o -`) from libuv's thread pool
 * (`fs.writev`), one write in flight at a time, straight from the caller's chunks: a chunk's
 * callback fires once it was written, and until then its memory is the sink's. Each write takes
 * every chunk that came since the last one (up to IOV_MAX), so the pool thread finds all that is
 * waiting.
 *
 * Why: a Linux pipe holds 64 KiB, and a `net.Socket` on it (what `process.stdout` is for a
 * pipe) refills it only when the event loop polls, once per turn, so a fast reader (`sha1sum`)
 * waits while tdl handles its sockets and hashes pieces. A blocking `write()` on a pool thread
 * refills the pipe as soon as the reader has taken bytes, whatever the main thread does.
 *
 * The price: a thread blocked in `write()` to a pipe whose reader does not read cannot be
 * interrupted, and Node joins its pool threads when the process exits. So the sink gives
 * in-flight data a bounded time at exit (`settle`), and then, like the 2 s flush of stdout
 * anyway, drops what the reader did not take: it reads the pipe's unread bytes back out of
 * it (`/proc/self/fd/N` opened for reading), which lets the blocked write return. A process
 * `exit` listener does the same synchronously for exits that do not go through `settle` (a
 * second Ctrl-C). See docs/DESIGN.md, "Writing the stream from the thread pool".
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { logger } from '../log.js';

const log = logger('tdl:stream');

/**
 * `write()` returns false while this many bytes (or more) wait to be written, and `drain` comes
 * once fewer do. The stream bounds what it hands over itself (pieces within its room, and its
 * read-ahead buffers); this is what the sink tells a caller that does not.
 */
export const FD_SINK_HIGH_WATER = 4 * 1024 * 1024;
/** The exit listener's drain: stop after this long without a byte, or this long in all. */
const EXIT_DRAIN_QUIET_MS = 50;
const EXIT_DRAIN_MAX_MS = 1_000;
/** Most chunks in one `writev` (Linux's IOV_MAX). */
const MAX_IOV = 1024;

type Callback = (err?: Error | null) => void;

interface Queued {
  chunk: Uint8Array;
  cb?: Callback;
}

export interface FdSinkOptions {
  /**
   * Where the sink writes when the descriptor says EAGAIN (someone made it non-blocking): a
   * stream that waits for the descriptor to be writable (process.stdout). Without one the
   * sink retries after a millisecond.
   */
  fallback?: { write(chunk: Uint8Array, cb: Callback): boolean };
  /**
   * The descriptor is a pipe: at exit, what a reader that does not read leaves unwritten is
   * dropped by reading it back out of the pipe (see the module comment).
   */
  pipe?: boolean;
  /** Where a pipe is reopened to be drained (tests); default `/proc/self/fd/<fd>`. */
  drainPath?: string;
  /** `write()` returns false from this many bytes waiting (tests); default FD_SINK_HIGH_WATER. */
  highWaterBytes?: number;
}

/**
 * `write(chunk, cb)`: `cb` once the chunk was written to the descriptor (its memory must stay
 * as it is until then); returns false while `highWaterBytes` or more wait, and `drain` comes
 * once fewer do. `flush(cb)`: `cb` once every byte written before was handed to the kernel.
 */
export class FdSink extends EventEmitter {
  /** Writes to the descriptor, and bytes dropped at exit. */
  batches = 0;
  dropped = 0;
  private readonly highWater: number;
  /** Bytes ever taken, and ever written out. */
  private head = 0;
  private tail = 0;
  /** The chunks not yet written whole, in order; the first ones are in flight. */
  private readonly queue: Queued[] = [];
  private inflight = 0;
  private failed: Error | null = null;
  private wantDrain = false;
  private closed = false;
  private flushWaiters: { at: number; cb: Callback }[] = [];
  private readonly onExit = () => this.drainSync();

  constructor(
    readonly fd: number,
    private readonly o: FdSinkOptions = {},
  ) {
    super();
    this.highWater = o.highWaterBytes ?? FD_SINK_HIGH_WATER;
    if (o.pipe) process.on('exit', this.onExit);
  }

  /** Bytes taken and not yet written to the descriptor. */
  get pending(): number {
    return this.head - this.tail;
  }

  /** Nothing to write and nothing being written. */
  get idle(): boolean {
    return this.pending === 0 && this.inflight === 0;
  }

  write(chunk: Uint8Array, cb?: Callback): boolean {
    if (this.failed || this.closed) {
      const err = this.failed ?? new Error('write after the sink was closed');
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (chunk.length === 0 && this.queue.length === 0) {
      if (cb) process.nextTick(cb, null);
      return this.pending < this.highWater;
    }
    this.queue.push({ chunk, cb });
    this.head += chunk.length;
    this.kick();
    const room = this.pending < this.highWater;
    if (!room) this.wantDrain = true;
    return room;
  }

  /** `cb` once every byte written so far is out (or the sink failed). */
  flush(cb: Callback): void {
    if (this.failed) return void process.nextTick(cb, this.failed);
    if (this.idle) return void process.nextTick(cb, null);
    this.flushWaiters.push({ at: this.head, cb });
  }

  /**
   * Wait, at most `graceMs`, for what is taken to be written; then drop the rest (what is
   * queued, and, for a pipe, the unread bytes of the write in flight) and stop writing.
   * Resolves once no write is in flight, so the process can exit.
   */
  async settle(graceMs: number): Promise<void> {
    if (!this.idle && !this.failed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => this.flush(() => r())),
        new Promise<void>((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.closed = true;
    const err = stoppedError();
    this.dropped += this.pending - this.inflight;
    // The chunks not being written go back now; those being written once the write returns.
    let k = 0;
    for (let bytes = 0; k < this.queue.length && bytes < this.inflight; k++)
      bytes += this.queue[k]!.chunk.length;
    this.head = this.tail + this.inflight;
    this.dropQueued(k, err);
    for (const w of this.flushWaiters.splice(0)) w.cb(err);
    if (this.inflight > 0 && this.o.pipe) {
      log('the reader took nothing for %d ms: dropping %d bytes', graceMs, this.inflight);
      await this.drainPipe();
    }
    this.dispose();
  }

  /** Stop listening for the process's exit (once nothing is in flight). */
  dispose(): void {
    if (this.inflight > 0) return;
    process.off('exit', this.onExit);
  }

  private kick(): void {
    if (this.inflight > 0 || this.failed || this.queue.length === 0) return;
    const bufs = this.queue.slice(0, MAX_IOV).map((q) => q.chunk);
    this.inflight = bufs.reduce((sum, b) => sum + b.length, 0);
    fs.writev(this.fd, bufs, null, (err, n) => this.written(err, n, bufs[0]!));
  }

  private written(err: NodeJS.ErrnoException | null, n: number, first: Uint8Array): void {
    this.inflight = 0;
    this.batches++;
    if (this.closed) {
      // The chunks of that write are the caller's again.
      this.tail = this.head;
      this.dropQueued();
      this.dispose();
      return;
    }
    if (err && err.code === 'EAGAIN') {
      this.viaFallback(first);
      return;
    }
    if (err) {
      this.fail(err);
      return;
    }
    this.advance(n);
  }

  /** `n` more bytes were written: the chunks written whole go back to the caller, in order. */
  private advance(n: number): void {
    this.tail += n;
    // Empty chunks go back with the chunk before them.
    while (this.queue.length > 0 && (n > 0 || this.queue[0]!.chunk.length === 0)) {
      const q = this.queue[0]!;
      if (q.chunk.length > n) {
        q.chunk = q.chunk.subarray(n);
        break;
      }
      n -= q.chunk.length;
      this.queue.shift();
      q.cb?.(null);
    }
    if (this.wantDrain && this.pending < this.highWater) {
      this.wantDrain = false;
      this.emit('drain');
    }
    if (this.flushWaiters.length > 0) {
      const ready = this.flushWaiters.filter((w) => w.at <= this.tail);
      this.flushWaiters = this.flushWaiters.filter((w) => w.at > this.tail);
      for (const w of ready) w.cb(null);
    }
    this.kick();
  }

  /** EAGAIN: the descriptor is non-blocking and full; this part goes through the fallback. */
  private viaFallback(part: Uint8Array): void {
    const fallback = this.o.fallback;
    this.inflight = part.length;
    if (!fallback) {
      setTimeout(() => {
        this.inflight = 0;
        this.kick();
      }, 1);
      return;
    }
    fallback.write(part, (err) => {
      this.inflight = 0;
      if (this.closed) {
        this.dropQueued();
        return this.dispose();
      }
      if (err) return this.fail(err);
      this.advance(part.length);
    });
  }

  /** The chunks queued from `from` on go back to the caller, unwritten. */
  private dropQueued(from = 0, err: Error = stoppedError()): void {
    for (const q of this.queue.splice(from)) q.cb?.(err);
  }

  private fail(err: Error): void {
    this.failed = err;
    const left = this.queue.splice(0);
    this.tail = this.head;
    for (const q of left) q.cb?.(err);
    for (const w of this.flushWaiters.splice(0)) w.cb(err);
    this.dispose();
    // Nobody may listen any more (the stream stopped, and this is its last bytes at exit).
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else log('stdout: %s', err.message);
  }

  /** Read what the reader left in the pipe until the write in flight has returned. */
  private async drainPipe(): Promise<void> {
    const fd = this.openDrain();
    if (fd === null) return;
    const buf = Buffer.allocUnsafe(64 * 1024);
    try {
      const until = Date.now() + EXIT_DRAIN_MAX_MS;
      while (this.inflight > 0 && Date.now() < until) {
        this.dropped += readAvailable(fd, buf);
        await new Promise((r) => setTimeout(r, 1));
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * The process is exiting (`process.exit`) while a write may be blocked on a pipe nobody
   * reads: empty the pipe until no byte came for EXIT_DRAIN_QUIET_MS (the write has returned),
   * at most EXIT_DRAIN_MAX_MS. Synchronous: nothing else runs any more.
   */
  private drainSync(): void {
    if (this.inflight === 0) return;
    const fd = this.openDrain();
    if (fd === null) return;
    const buf = Buffer.allocUnsafe(64 * 1024);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const start = Date.now();
    let quietSince = start;
    let got = 0;
    try {
      while (Date.now() - start < EXIT_DRAIN_MAX_MS) {
        const n = readAvailable(fd, buf);
        got += n;
        const now = Date.now();
        if (n > 0) quietSince = now;
        else if (got >= this.inflight || now - quietSince >= EXIT_DRAIN_QUIET_MS) break;
        Atomics.wait(nap, 0, 0, 1);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  private openDrain(): number | null {
    const path = this.o.drainPath ?? `/proc/self/fd/${this.fd}`;
    try {
      return fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      log('cannot reopen %s to drain it: %s', path, (e as Error).message);
      return null;
    }
  }
}

/** Read and discard what can be read now (non-blocking descriptor); returns the bytes. */
function readAvailable(fd: number, buf: Buffer): number {
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return total;
      throw e;
    }
    if (n === 0) return total;
    total += n;
  }
}

/** What a chunk's callback gets when the sink was stopped before writing it. */
function stoppedError(): Error {
  return new Error('the stream was stopped before these bytes were written');
}
