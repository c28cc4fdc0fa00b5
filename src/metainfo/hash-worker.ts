/**
 * Piece hashing for `tdl create`, run in worker threads so that every core hashes.
 *
 * A job is a run of whole pieces given as the byte segments of files that make them up, in
 * order (a piece may span files). `hashJob` reads the segments through one reusable buffer
 * (never a whole file in memory) and returns the pieces' SHA-1 hashes, concatenated.
 *
 * The worker is started from source text (`HASH_WORKER_SOURCE`, built from `hashJob` itself),
 * so the same code runs from dist/ and under the test runner. For that reason `hashJob` takes
 * the modules it needs as arguments and must not refer to anything outside its own body.
 */

export interface HashSegment {
  path: string;
  /** Where the segment starts in the file. */
  offset: number;
  length: number;
  /** The file's size when it was listed; a file that changed since is an error. */
  fileSize: number;
}

export interface HashJob {
  id: number;
  /** Index of the job's first piece in the torrent. */
  firstPiece: number;
  pieceLength: number;
  segments: HashSegment[];
}

/** Reads per call. Large reads keep the system-call count low; small enough to never matter. */
export const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * Hashes one job. `report(bytes)` is called as data is read (about every 16 MiB and at the
 * end). Throws an Error with `code` 'ECHANGED' when a file is not the size it was listed with.
 */
export function hashJob(
  job: HashJob,
  fs: typeof import('node:fs'),
  crypto: typeof import('node:crypto'),
  buf: Buffer,
  report: (bytes: number) => void,
): Uint8Array {
  let total = 0;
  for (const seg of job.segments) total += seg.length;
  const count = Math.ceil(total / job.pieceLength);
  const out = new Uint8Array(count * 20);
  let hash = crypto.createHash('sha1');
  let inPiece = 0;
  let piece = 0;
  let unreported = 0;
  for (const seg of job.segments) {
    const fd = fs.openSync(seg.path, 'r');
    try {
      if (fs.fstatSync(fd).size !== seg.fileSize) {
        const err = new Error(`${seg.path} changed while the torrent was being made`);
        (err as Error & { code: string }).code = 'ECHANGED';
        throw err;
      }
      let pos = seg.offset;
      let left = seg.length;
      while (left > 0) {
        const n = fs.readSync(fd, buf, 0, Math.min(left, buf.length), pos);
        if (n === 0) {
          const err = new Error(`${seg.path} changed while the torrent was being made`);
          (err as Error & { code: string }).code = 'ECHANGED';
          throw err;
        }
        pos += n;
        left -= n;
        let used = 0;
        while (used < n) {
          const take = Math.min(n - used, job.pieceLength - inPiece);
          hash.update(buf.subarray(used, used + take));
          used += take;
          inPiece += take;
          if (inPiece === job.pieceLength) {
            out.set(hash.digest(), piece * 20);
            piece++;
            hash = crypto.createHash('sha1');
            inPiece = 0;
          }
        }
        unreported += n;
        if (unreported >= 16 * 1024 * 1024) {
          report(unreported);
          unreported = 0;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  if (inPiece > 0) out.set(hash.digest(), piece * 20);
  if (unreported > 0) report(unreported);
  return out;
}

/** Source text of the worker: answers each HashJob message with its hashes or an error. */
export const HASH_WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const hashJob = (${hashJob.toString()});
const buf = Buffer.allocUnsafe(${READ_BUFFER_BYTES});
parentPort.on('message', (job) => {
  try {
    const hashes = hashJob(job, fs, crypto, buf, (bytes) =>
      parentPort.postMessage({ id: job.id, progress: bytes }),
    );
    parentPort.postMessage({ id: job.id, hashes });
  } catch (e) {
    parentPort.postMessage({ id: job.id, error: String(e && e.message), code: e && e.code });
  }
});
`;
