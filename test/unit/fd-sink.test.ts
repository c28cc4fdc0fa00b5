/**
 * FdSink against a real FIFO (mkfifo) in a temp folder: its write end is the sink's descriptor,
 * its read end is read (or not) by the test.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FdSink } from '../../src/storage/fd-sink.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

let dir = '';
let fifo = '';
const fds: number[] = [];
const sinks: FdSink[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tdl-fdsink-'));
  fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
});

afterEach(async () => {
  // A sink still writing to a pipe nobody reads is let go first (its write would block).
  for (const s of sinks.splice(0)) await s.settle(0);
  for (const fd of fds.splice(0)) fs.closeSync(fd);
  await rm(dir, { recursive: true, force: true });
});

/** The FIFO's read end (non-blocking), then its write end (blocking unless asked). */
function openPipe(o: { nonBlocking?: boolean } = {}): { r: number; w: number } {
  const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;
  const r = fs.openSync(fifo, O_RDONLY | O_NONBLOCK);
  fds.push(r);
  const w = fs.openSync(fifo, O_WRONLY | (o.nonBlocking ? O_NONBLOCK : 0));
  fds.push(w);
  return { r, w };
}

function sink(fd: number, o: ConstructorParameters<typeof FdSink>[1] = {}): FdSink {
  const s = new FdSink(fd, o);
  sinks.push(s);
  return s;
}

/** Reads the pipe on a timer until `until()`; returns what it read. */
function reader(fd: number, until: () => boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  return new Promise((resolve) => {
    const tick = () => {
      for (;;) {
        let n = 0;
        try {
          n = fs.readSync(fd, buf, 0, buf.length, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        }
        if (n <= 0) break;
        parts.push(Buffer.from(buf.subarray(0, n)));
      }
      if (until()) resolve(Buffer.concat(parts));
      else setTimeout(tick, 1);
    };
    tick();
  });
}

/** Chunks of seeded random sizes (1 byte to 600 KiB), some empty. */
function chunks(total: number, seed: number): Buffer[] {
  const data = randomBytesSeeded(total, seed);
  const sizes = randomBytesSeeded(4096, seed + 1);
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < total; k++) {
    const n = Math.min(total - at, ((sizes.readUInt16LE((k * 2) % 4094) * 10) % 600_000) + 1);
    out.push(data.subarray(at, at + n));
    if (k % 7 === 3) out.push(Buffer.alloc(0));
    at += n;
  }
  return out;
}

describe('FdSink', () => {
  it('writes every chunk whole and in order, several in one write', async () => {
    const { r, w } = openPipe();
    const s = sink(w, { pipe: true, drainPath: fifo, highWaterBytes: 256 * 1024 });
    const parts = chunks(6 * 1024 * 1024 + 123, 7);
    const calls: number[] = [];
    parts.forEach((c, i) =>
      s.write(c, (err) => {
        expect(err).toBeNull();
        calls.push(i);
      }),
    );
    let flushed = false;
    s.flush((err) => {
      expect(err).toBeNull();
      flushed = true;
    });
    const got = await reader(r, () => flushed);
    expect(got.equals(Buffer.concat(parts))).toBe(true);
    // Each callback once its chunk was written, in order; flush once all was written.
    expect(calls).toEqual(parts.map((_, i) => i));
    expect(s.idle).toBe(true);
    expect(s.batches).toBeLessThan(parts.length);
  });

  it("a chunk stays the sink's until it was written: its callback waits for the reader", async () => {
    const { r, w } = openPipe();
    const s = sink(w, { pipe: true, drainPath: fifo });
    let called = false;
    // Nobody reads yet: the pipe holds 64 KiB, the rest of the chunk waits.
    const data = randomBytesSeeded(512 * 1024, 9);
    s.write(data, () => (called = true));
    await new Promise((res) => setTimeout(res, 20));
    expect(called).toBe(false);
    expect(s.pending).toBeGreaterThan(0);
    const got = await reader(r, () => called);
    expect(got.equals(data)).toBe(true);
  });

  it('says when it is full, and drains once the reader took the bytes', async () => {
    const { r, w } = openPipe();
    const high = 1024 * 1024;
    const s = sink(w, { pipe: true, drainPath: fifo, highWaterBytes: high });
    const big = randomBytesSeeded(2 * high, 3);
    expect(s.write(big.subarray(0, 1000))).toBe(true);
    expect(s.write(big.subarray(1000))).toBe(false);
    let drained = false;
    s.on('drain', () => (drained = true));
    const got = await reader(r, () => drained && s.idle);
    expect(got.equals(big)).toBe(true);
  });

  it('a reader that went away: EPIPE, as an event and to flush; later writes fail', async () => {
    const { r, w } = openPipe();
    fs.closeSync(r);
    fds.splice(fds.indexOf(r), 1);
    const s = sink(w, { pipe: true, drainPath: fifo });
    const event = new Promise<Error>((resolve) => s.once('error', resolve));
    s.write(Buffer.alloc(10));
    const flushed = new Promise<Error | null | undefined>((res) => s.flush(res));
    const e = await event;
    expect((e as NodeJS.ErrnoException).code).toBe('EPIPE');
    expect(((await flushed) as NodeJS.ErrnoException).code).toBe('EPIPE');
    const late = await new Promise<Error | null | undefined>((res) =>
      s.write(Buffer.alloc(1), res),
    );
    expect((late as NodeJS.ErrnoException).code).toBe('EPIPE');
  });

  it('EPIPE with nobody listening (the stream already stopped) is not thrown', async () => {
    const { r, w } = openPipe();
    fs.closeSync(r);
    fds.splice(fds.indexOf(r), 1);
    const s = sink(w, { pipe: true, drainPath: fifo });
    s.write(Buffer.alloc(10));
    const e = await new Promise<Error | null | undefined>((res) => s.flush(res));
    expect((e as NodeJS.ErrnoException).code).toBe('EPIPE');
  });

  it('settle: a reader that reads nothing gets the grace, then the write in flight is let go', async () => {
    const { w } = openPipe();
    const s = sink(w, { pipe: true, drainPath: fifo });
    // 1 MiB blocks the pool thread once the pipe's 64 KiB are full; the next chunk waits.
    s.write(Buffer.alloc(1024 * 1024, 1));
    await new Promise((r) => setTimeout(r, 5));
    s.write(Buffer.alloc(1000, 2));
    const flushed = new Promise<Error | null | undefined>((res) => s.flush(res));
    await s.settle(20);
    expect(s.idle).toBe(true);
    expect(await flushed).toBeInstanceOf(Error);
    // What waited was dropped, and the write in flight was drained out of the pipe.
    expect(s.dropped).toBeGreaterThanOrEqual(1000 + 1024 * 1024 - 64 * 1024);
    const late = await new Promise<Error | null | undefined>((res) =>
      s.write(Buffer.alloc(1), res),
    );
    expect(late).toBeInstanceOf(Error);
  });

  it('settle: a reader that reads gets everything within the grace', async () => {
    const { r, w } = openPipe();
    const s = sink(w, { pipe: true, drainPath: fifo });
    const data = randomBytesSeeded(3 * 1024 * 1024, 11);
    s.write(data);
    expect(s.pending).toBe(data.length);
    let settled = false;
    const got = reader(r, () => settled);
    await s.settle(60_000);
    settled = true;
    expect((await got).equals(data)).toBe(true);
    expect(s.dropped).toBe(0);
  });

  it('a non-blocking descriptor: what gets EAGAIN goes through the fallback, in order', async () => {
    const { r, w } = openPipe({ nonBlocking: true });
    let viaFallback = 0;
    // A fallback that waits for room as process.stdout would (here: by retrying).
    const fallback = {
      write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
        viaFallback++;
        let at = 0;
        const retry = () => {
          try {
            while (at < chunk.length) at += fs.writeSync(w, chunk, at);
            cb(null);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return cb(e as Error);
            setTimeout(retry, 1);
          }
        };
        retry();
        return true;
      },
    };
    const s = sink(w, { fallback, highWaterBytes: 512 * 1024 });
    const parts = chunks(2 * 1024 * 1024, 5);
    let done = false;
    for (const c of parts) s.write(c);
    s.flush(() => (done = true));
    const got = await reader(r, () => done);
    expect(got.equals(Buffer.concat(parts))).toBe(true);
    expect(viaFallback).toBeGreaterThan(0);
  });
});
