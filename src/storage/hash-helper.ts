/**
 * A second thread for the check's SHA-1 (storage/hash-pieces.ts), so that `tdl verify`, `tdl
 * seed` and the start-up check of a large torrent hash on two cores. The main thread still does
 * every read (through the storage, with its rules for missing files, padding and the parts
 * file), into shared memory; this worker only hashes the bytes it is pointed at, in the order it
 * is asked. Started from source text, as `tdl create`'s workers are (metainfo/hash-worker.ts).
 */
import type { Worker } from 'node:worker_threads';

/** Messages: `{ memory, offset, length, sizes }` (whole pieces) or `{ …, last }` (a stretch). */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
let stretch = null;
parentPort.on('message', (m) => {
  const buf = Buffer.from(m.memory, m.offset, m.length);
  if (m.sizes) {
    const out = Buffer.allocUnsafe(20 * m.sizes.length);
    let at = 0;
    for (let i = 0; i < m.sizes.length; i++) {
      crypto.createHash('sha1').update(buf.subarray(at, at + m.sizes[i])).digest().copy(out, 20 * i);
      at += m.sizes[i];
    }
    parentPort.postMessage(out);
  } else {
    stretch ??= crypto.createHash('sha1');
    stretch.update(buf);
    if (m.last) {
      parentPort.postMessage(stretch.digest());
      stretch = null;
    } else {
      parentPort.postMessage(null);
    }
  }
});
`;

interface Waiter {
  resolve(m: Uint8Array | null): void;
  reject(e: Error): void;
}

export class HashHelper {
  private readonly worker: Worker;
  /** Answers come in the order of the questions. */
  private readonly waiting: Waiter[] = [];
  private failure: Error | null = null;

  constructor() {
    const { Worker } = process.getBuiltinModule('node:worker_threads');
    this.worker = new Worker(SOURCE, { eval: true });
    this.worker.on('message', (m: Uint8Array | null) => this.waiting.shift()?.resolve(m));
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', () => fail(new Error('the hashing thread stopped')));
  }

  /** SHA-1 of consecutive pieces of these sizes from the start of `buf` (shared memory). */
  async pieces(buf: Buffer, sizes: readonly number[]): Promise<Buffer> {
    const m = await this.ask({ ...where(buf), sizes });
    return Buffer.from(m!.buffer, m!.byteOffset, m!.byteLength);
  }

  /** Hashes `buf` (shared memory) as the next stretch of a piece; `last`: the piece's SHA-1. */
  async stretch(buf: Buffer, last: boolean): Promise<Buffer | null> {
    const m = await this.ask({ ...where(buf), last });
    return m && Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }

  private ask(message: object): Promise<Uint8Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(message);
    });
  }
}

function where(buf: Buffer): { memory: ArrayBufferLike; offset: number; length: number } {
  if (!(buf.buffer instanceof SharedArrayBuffer)) throw new Error('not in shared memory');
  return { memory: buf.buffer, offset: buf.byteOffset, length: buf.length };
}
