/**
 * Piece hashing for `tdl create`, shared by the main thread and worker threads so that every
 * core hashes.
 *
 * The pieces are cut into jobs of `jobPieces` whole pieces (a piece may span files). Every
 * hasher takes the next job number from a shared counter (`Atomics.add`), so the threads stay
 * balanced to the last job without a message per job, and a worker that boots late simply
 * takes fewer. `hashJob` reads the job's bytes through one reusable buffer (never a whole file
 * in memory) and writes the pieces' SHA-1 hashes into the shared hash array.
 *
 * The worker is started from source text (`HASH_WORKER_SOURCE`, built from the functions
 * below), so the same code runs from dist/ and under the test runner. For that reason they take
 * the modules they need as arguments and must not refer to anything outside their own bodies.
 */

import { READ_SKEW } from '../read-buffer.js';

/** What every hasher needs to find a job's bytes: sent to each worker once. */
export interface HashPlan {
  /** Files in torrent order: what to open, and the size they were listed with. */
  paths: string[];
  sizes: number[];
  pieceLength: number;
  pieceCount: number;
  /** Pieces per job (the last job may have fewer). */
  jobPieces: number;
  jobCount: number;
  /** Int32Array: [CTL_NEXT] next job to take, [CTL_DONE] jobs finished, [CTL_STOP] 1 = stop. */
  control: SharedArrayBuffer;
  /** BigInt64Array: bytes hashed so far, one slot per hasher (the main thread is slot 0). */
  progress: SharedArrayBuffer;
  /** pieceCount × 20 bytes. */
  hashes: SharedArrayBuffer;
}

export const CTL_NEXT = 0;
export const CTL_DONE = 1;
export const CTL_STOP = 2;

/** Reads per call. Large reads keep the system-call count low; small enough to never matter. */
export const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * Where each file starts in the torrent's byte stream (one more entry: the total). Used by
 * hashJob to find a job's first file.
 */
export function fileStarts(sizes: readonly number[]): Float64Array {
  const starts = new Float64Array(sizes.length + 1);
  for (let i = 0; i < sizes.length; i++) starts[i + 1] = starts[i]! + sizes[i]!;
  return starts;
}

/**
 * Hashes job `job` of `plan` into `hashes`. `buf` is the read buffer (one byte is kept spare:
 * the last read of a file asks for one byte more than the file should have, so a file that
 * grew is caught without another system call). `report(bytes)` is called after each read.
 * Throws an Error with `code` 'ECHANGED' when a file is not the size it was listed with.
 */
export function hashJob(
  plan: HashPlan,
  starts: Float64Array,
  job: number,
  hashes: Uint8Array,
  fs: typeof import('node:fs'),
  crypto: typeof import('node:crypto'),
  buf: Buffer,
  report: (bytes: number) => void,
): void {
  const pl = plan.pieceLength;
  const total = starts[starts.length - 1]!;
  const firstPiece = job * plan.jobPieces;
  const lastPiece = Math.min(firstPiece + plan.jobPieces, plan.pieceCount);
  let pos = firstPiece * pl;
  const end = Math.min(lastPiece * pl, total);
  const changed = (p: string) => {
    const err = new Error(`${p} changed while the torrent was being made`);
    (err as Error & { code: string }).code = 'ECHANGED';
    return err;
  };
  // The file holding byte `pos`: the last one starting at or before it that is not empty.
  let lo = 0;
  let hi = plan.sizes.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  let fi = lo;
  const room = buf.length - 1;
  // A piece read whole into `buf` is hashed in one call (crypto.hash, Node 20.12+): no Hash
  // object to make, feed and finish. Only a piece cut by the end of a read or of a file is fed
  // to a streaming hash.
  const oneShot = typeof crypto.hash === 'function';
  let hash: ReturnType<typeof crypto.createHash> | null = null;
  let inPiece = 0;
  let piece = firstPiece;
  while (pos < end) {
    const size = plan.sizes[fi]!;
    const fileEnd = starts[fi]! + size;
    if (size === 0 || fileEnd <= pos) {
      fi++;
      continue;
    }
    const path = plan.paths[fi]!;
    let off = pos - starts[fi]!;
    let left = Math.min(fileEnd, end) - pos;
    const toEof = pos + left === fileEnd;
    // A failed read names no file (EISDIR: a folder put in the file's place): this one.
    const named = (e: unknown) => {
      if (e instanceof Error && !('path' in e)) Object.assign(e, { path });
      return e;
    };
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY);
    } catch (e) {
      // Listed a moment ago: a file gone, or a folder on its way made a file, changed.
      const code = (e as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw changed(path);
      throw named(e);
    }
    try {
      while (left > 0) {
        // The last read of a file asks for one byte more than is left: getting it means the
        // file grew.
        const want = left <= room && toEof ? left + 1 : Math.min(left, room);
        const n = fs.readSync(fd, buf, 0, want, off);
        if (n === 0 || n > left) throw changed(path);
        off += n;
        left -= n;
        pos += n;
        let used = 0;
        while (used < n) {
          if (inPiece === 0 && oneShot && n - used >= pl) {
            hashes.set(crypto.hash('sha1', buf.subarray(used, used + pl), 'buffer'), piece * 20);
            piece++;
            used += pl;
            continue;
          }
          const take = Math.min(n - used, pl - inPiece);
          hash ??= crypto.createHash('sha1');
          hash.update(buf.subarray(used, used + take));
          used += take;
          inPiece += take;
          if (inPiece === pl) {
            hashes.set(hash.digest(), piece * 20);
            piece++;
            hash = null;
            inPiece = 0;
          }
        }
        report(n);
      }
    } catch (e) {
      throw named(e);
    } finally {
      fs.closeSync(fd);
    }
    fi++;
  }
  if (inPiece > 0) hashes.set(hash!.digest(), piece * 20);
}

/**
 * Takes jobs until none is left or the stop flag is set; returns true if it finished the last
 * job of all (the caller then reports that hashing is complete). `slot` is this hasher's
 * progress slot.
 */
export function hashJobs(
  plan: HashPlan,
  slot: number,
  fs: typeof import('node:fs'),
  crypto: typeof import('node:crypto'),
  buf: Buffer,
  starts: Float64Array,
  /** Return false to stop after the current job (the main thread yields to its event loop). */
  more: () => boolean,
  hashJobFn: typeof hashJob,
): boolean {
  const control = new Int32Array(plan.control);
  const progress = new BigInt64Array(plan.progress);
  const hashes = new Uint8Array(plan.hashes);
  const report = (n: number) => {
    Atomics.add(progress, slot, BigInt(n));
  };
  // 0, 1, 2: CTL_NEXT, CTL_DONE, CTL_STOP (this body runs in workers too: no outside names).
  while (Atomics.load(control, 2) === 0) {
    const job = Atomics.add(control, 0, 1);
    if (job >= plan.jobCount) return false;
    hashJobFn(plan, starts, job, hashes, fs, crypto, buf, report);
    if (Atomics.add(control, 1, 1) + 1 === plan.jobCount) return true;
    if (!more()) return false;
  }
  return false;
}

/**
 * Source text of the worker: given a HashPlan and its progress slot, takes jobs until none is
 * left, then answers `{ last }` (true if it finished the last job) or `{ error, code }`.
 */
export const HASH_WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const fileStarts = (${fileStarts.toString()});
const hashJob = (${hashJob.toString()});
const hashJobs = (${hashJobs.toString()});
parentPort.once('message', ({ plan, slot }) => {
  try {
    // readBuffer (src/read-buffer.ts): the reads land READ_SKEW bytes into the memory.
    const buf = Buffer.allocUnsafeSlow(${READ_BUFFER_BYTES} + 1 + ${READ_SKEW}).subarray(${READ_SKEW});
    const last = hashJobs(plan, slot, fs, crypto, buf, fileStarts(plan.sizes), () => true, hashJob);
    parentPort.postMessage({ last });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message), code: e && e.code, path: e && e.path });
  }
});
`;
