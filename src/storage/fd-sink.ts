/**
 * A byte sink that writes to a file descriptor (stdout with `-o -`) from libuv's thread pool
 * (`fs.writev`), one write in flight at a time, in batches of what is queued.
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

/** `write()` returns false once this many bytes are queued or being written. */
export const FD_SINK_HIGH_WATER = 4 * 1024 * 1024;
/** Most bytes handed to one `writev` (the queue's chunks are joined up to this). */
export const FD_SINK_MAX_BATCH = 8 * 1024 * 1024;
/** Most buffers in one `writev` (IOV_MAX is 1,024 on Linux). */
const MAX_IOV = 1024;
/** The exit listener's drain: stop after this long without a byte, or this long in all. */
const EXIT_DRAIN_QUIET_MS = 50;
const EXIT_DRAIN_MAX_MS = 1_000;

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
}

export class FdSink extends EventEmitter {
  /** Bytes queued and not yet written (in flight included). */
  pending = 0;
  /** Batches written, and the bytes dropped at exit. */
  batches = 0;
  dropped = 0;
  private readonly queue: Queued[] = [];
  private inflight: Queued[] | null = null;
  private inflightBytes = 0;
  private failed: Error | null = null;
  private wantDrain = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly onExit = () => this.drainSync();

  constructor(
    readonly fd: number,
    private readonly o: FdSinkOptions = {},
  ) {
    super();
    if (o.pipe) process.on('exit', this.onExit);
  }

  write(chunk: Uint8Array, cb?: Callback): boolean {
    if (this.failed || this.closed) {
      const err = this.failed ?? new Error('write after the sink was closed');
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (chunk.length === 0) {
      // Ordered after what is queued, like a stream's empty write.
      this.queue.push({ chunk, cb });
    } else {
      this.queue.push({ chunk, cb });
      this.pending += chunk.length;
    }
    this.kick();
    const room = this.pending < FD_SINK_HIGH_WATER;
    if (!room) this.wantDrain = true;
    return room;
  }

  /** Nothing queued and nothing being written. */
  get idle(): boolean {
    return this.inflight === null && this.queue.length === 0;
  }

  /**
   * Wait, at most `graceMs`, for what is queued to be written; then drop the rest (what is
   * queued, and, for a pipe, the unread bytes of the write in flight) and stop writing.
   * Resolves once no write is in flight, so the process can exit.
   */
  async settle(graceMs: number): Promise<void> {
    if (!this.idle) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.untilIdle(),
        new Promise<void>((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.closed = true;
    const left = this.queue.splice(0);
    for (const q of left) {
      this.dropped += q.chunk.length;
      this.pending -= q.chunk.length;
    }
    const err = new Error('the stream was stopped before these bytes were written');
    for (const q of left) q.cb?.(err);
    if (this.inflight && this.o.pipe) {
      log('the reader took nothing for %d ms: dropping %d bytes', graceMs, this.inflightBytes);
      await this.drainPipe();
    }
    this.dispose();
  }

  /** Stop listening for the process's exit (once nothing is in flight). */
  dispose(): void {
    if (this.inflight) return;
    process.off('exit', this.onExit);
  }

  private untilIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private kick(): void {
    if (this.inflight || this.failed || this.queue.length === 0) return;
    const batch: Queued[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < MAX_IOV) {
      const next = this.queue[0]!;
      if (batch.length > 0 && bytes + next.chunk.length > FD_SINK_MAX_BATCH) break;
      batch.push(this.queue.shift()!);
      bytes += next.chunk.length;
    }
    this.inflight = batch;
    this.inflightBytes = bytes;
    const bufs = batch.filter((q) => q.chunk.length > 0).map((q) => q.chunk);
    if (bufs.length === 0) {
      process.nextTick(() => this.written(null, 0));
      return;
    }
    fs.writev(this.fd, bufs as NodeJS.ArrayBufferView[], null, (err, n) => this.written(err, n));
  }

  private written(err: NodeJS.ErrnoException | null, n: number): void {
    const batch = this.inflight!;
    this.inflight = null;
    this.inflightBytes = 0;
    this.batches++;
    if (err && err.code !== 'EAGAIN') {
      this.fail(err, batch);
      return;
    }
    // The chunks written whole are done; a chunk written in part goes back to the queue's head.
    let done = err ? 0 : n;
    let i = 0;
    for (; i < batch.length; i++) {
      const q = batch[i]!;
      if (q.chunk.length > done) break;
      done -= q.chunk.length;
      this.pending -= q.chunk.length;
      q.cb?.(null);
    }
    if (i < batch.length) {
      const rest = batch.slice(i);
      const head = rest[0]!;
      this.pending -= done;
      rest[0] = { chunk: head.chunk.subarray(done), cb: head.cb };
      this.queue.unshift(...rest);
      if (err) {
        this.waitWritable();
        return;
      }
    }
    this.afterWrite();
  }

  private afterWrite(): void {
    if (this.wantDrain && this.pending < FD_SINK_HIGH_WATER && !this.failed) {
      this.wantDrain = false;
      this.emit('drain');
    }
    if (this.idle) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    this.kick();
  }

  /** EAGAIN: the descriptor is non-blocking and full. The next chunk goes through the fallback. */
  private waitWritable(): void {
    const fallback = this.o.fallback;
    if (!fallback) {
      this.inflight = [];
      setTimeout(() => {
        this.inflight = null;
        this.afterWrite();
      }, 1);
      return;
    }
    const q = this.queue.shift()!;
    this.inflight = [q];
    this.inflightBytes = q.chunk.length;
    fallback.write(q.chunk, (err) => {
      this.inflight = null;
      this.inflightBytes = 0;
      if (err) {
        this.fail(err, [q]);
        return;
      }
      this.pending -= q.chunk.length;
      q.cb?.(null);
      this.afterWrite();
    });
  }

  private fail(err: Error, batch: Queued[]): void {
    this.failed = err;
    const all = [...batch, ...this.queue.splice(0)];
    this.pending = 0;
    for (const q of all) q.cb?.(err);
    for (const w of this.idleWaiters.splice(0)) w();
    this.dispose();
    this.emit('error', err);
  }

  /** Read what the reader left in the pipe until the write in flight has returned. */
  private async drainPipe(): Promise<void> {
    const fd = this.openDrain();
    if (fd === null) return;
    const buf = Buffer.allocUnsafe(64 * 1024);
    try {
      const until = Date.now() + EXIT_DRAIN_MAX_MS;
      while (this.inflight && Date.now() < until) {
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
    if (!this.inflight) return;
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
        else if (got >= this.inflightBytes || now - quietSince >= EXIT_DRAIN_QUIET_MS) break;
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
