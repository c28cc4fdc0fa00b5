/**
 * Making a .torrent (v1) from a file or a folder: `tdl create`.
 *
 * - Deterministic: files are sorted by the bytes of their path, component by component; without
 *   a creation date the same input gives byte-identical output.
 * - Streaming: files are read through 1 MiB buffers, never whole, by this thread and
 *   `threads - 1` worker threads (see hash-worker.ts), each taking jobs of whole pieces.
 * - Path rules: the torrent only holds regular files with names that are valid UTF-8 and pass
 *   the parser's path checks. A symbolic link is followed only when its target is inside the
 *   folder (a link to a file there is stored as a copy of it); a link that leads outside
 *   refuses the whole run. Anything else left out (special files, bad names, empty folders,
 *   broken or folder links, the output file itself) is reported through `onSkip`.
 */
import crypto from 'node:crypto';
import fs, { lstatSync, readdirSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import debug from 'debug';
import { DiskError, UsageError } from '../errors.js';
import { encode } from './bencode.js';
import {
  HASH_WORKER_SOURCE,
  READ_BUFFER_BYTES,
  hashJob,
  type HashJob,
  type HashSegment,
} from './hash-worker.js';
import { checkPathComponent, normalizeComponent } from './paths.js';
import { MAX_FILES, MAX_PIECE_LENGTH, parseTorrent } from './torrent.js';

const log = debug('tdl:create');

export const MIN_PIECE_LENGTH = 16 * 1024;
/** Largest piece length `auto` picks. */
export const MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024;
/** `auto` aims at no more than this many pieces (and more than half as many). */
export const AUTO_MAX_PIECES = 2000;

export interface CreateOptions {
  /** Tracker tiers, first URL of the first tier is `announce`. */
  trackers?: string[][];
  /** BEP 19 web seeds (`url-list`). */
  webSeeds?: string[];
  /** Bytes (a power of two from 16 KiB to 64 MiB), or 'auto' (the default). */
  pieceLength?: number | 'auto';
  private?: boolean;
  comment?: string;
  /** `info.source` (some private trackers ask for it; it changes the info hash). */
  source?: string;
  createdBy?: string;
  /** Seconds since the epoch; undefined writes no date. */
  creationDate?: number;
  /** Hashing threads, this one included; default: the available parallelism, at most 8. */
  threads?: number;
  /** A path never to include (the output file, when it lies inside the input folder). */
  exclude?: string;
  onSkip?: (relativePath: string, reason: string) => void;
  /** Called as data is hashed: bytes done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface CreatedTorrent {
  torrent: Buffer;
  infoHash: Buffer;
  infoHashHex: string;
  magnet: string;
  name: string;
  /** Files in the torrent (1 for a single-file torrent). */
  fileCount: number;
  multiFile: boolean;
  length: number;
  pieceLength: number;
  pieceCount: number;
}

interface SourceFile {
  /** Absolute path to read (a link's target when the entry is a link). */
  abs: string;
  /** Path components inside the torrent. */
  path: string[];
  /** UTF-8 bytes of each component, for sorting. */
  keys: Buffer[];
  length: number;
}

/**
 * The piece length `auto` picks: the smallest power of two that gives at most AUTO_MAX_PIECES
 * pieces (so between 1,000 and 2,000 pieces), kept within 16 KiB–16 MiB.
 */
export function autoPieceLength(total: number): number {
  let p = MIN_PIECE_LENGTH;
  while (p < MAX_AUTO_PIECE_LENGTH && Math.ceil(total / p) > AUTO_MAX_PIECES) p *= 2;
  return p;
}

/** Parses `262144`, `256K`, `256k`, `256KiB`, `4M`, `4MiB`... Throws UsageError. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${JSON.stringify(text)} is not a size (e.g. 262144, 256K, 4M)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${text} is too large`);
  return n;
}

/** Checks an explicit piece length: a power of two from 16 KiB to MAX_PIECE_LENGTH. */
export function checkPieceLength(n: number): number {
  if (n < MIN_PIECE_LENGTH || n > MAX_PIECE_LENGTH || (n & (n - 1)) !== 0) {
    throw new UsageError(
      `piece length ${n} must be a power of two from ${MIN_PIECE_LENGTH} (16K) to ${MAX_PIECE_LENGTH} (64M)`,
    );
  }
  return n;
}

function compareKeys(a: SourceFile, b: SourceFile): number {
  const n = Math.min(a.keys.length, b.keys.length);
  for (let i = 0; i < n; i++) {
    const c = Buffer.compare(a.keys[i]!, b.keys[i]!);
    if (c !== 0) return c;
  }
  return a.keys.length - b.keys.length;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A directory entry's name as a checked torrent path component, or the reason it is not one. */
function entryName(raw: Buffer): { name: string } | { reason: string } {
  let text: string;
  try {
    text = fatalUtf8.decode(raw);
  } catch {
    return { reason: 'name is not valid UTF-8' };
  }
  const name = normalizeComponent(text);
  try {
    checkPathComponent(name, 'name');
  } catch (e) {
    return { reason: (e as Error).message.replace(/^name: /, '') };
  }
  return { name };
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function ioError(what: string, e: unknown): DiskError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new DiskError(`cannot read ${what}: ${code}`, { cause: e });
}

/** Lists the regular files under `dir` (depth first, iteratively), in no particular order. */
async function listFolder(
  dir: string,
  opts: CreateOptions,
  skip: (rel: string, reason: string) => void,
): Promise<SourceFile[]> {
  const realRoot = await realpath(dir).catch((e: unknown) => {
    throw ioError(dir, e);
  });
  const exclude = opts.exclude === undefined ? undefined : path.resolve(opts.exclude);
  const out: SourceFile[] = [];
  const stack: { abs: string; path: string[] }[] = [{ abs: dir, path: [] }];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: Buffer[];
    try {
      entries = readdirSync(d.abs, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(d.abs, e);
    }
    if (entries.length === 0 && d.path.length > 0) {
      skip(d.path.join('/'), 'empty folder (a torrent holds files only)');
    }
    for (let k = 0; k < entries.length; k++) {
      const raw = entries[k]!;
      const shown = [...d.path, raw.toString('utf8')].join('/');
      const named = entryName(raw);
      if ('reason' in named) {
        skip(shown, named.reason);
        continue;
      }
      const rel = [...d.path, named.name];
      const abs = path.join(d.abs, raw.toString('utf8'));
      if (exclude !== undefined && path.resolve(abs) === exclude) {
        skip(shown, 'the output file itself');
        continue;
      }
      // Synchronous on purpose: nothing else runs on this thread while listing (the workers
      // boot on theirs), and a promise per file cost several times the system call itself.
      let st: Stats;
      try {
        st = lstatSync(abs);
      } catch (e) {
        throw ioError(abs, e);
      }
      let source = abs;
      if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(abs);
        } catch {
          skip(shown, 'broken symbolic link');
          continue;
        }
        if (!isInside(realRoot, target)) {
          throw new UsageError(
            `${abs} is a symbolic link to ${target}, outside ${dir}: ` +
              'refusing to put it in the torrent (copy the target in, or remove the link)',
          );
        }
        try {
          st = await stat(abs);
        } catch (e) {
          throw ioError(abs, e);
        }
        if (st.isDirectory()) {
          skip(shown, 'symbolic link to a folder (its files are already in the torrent)');
          continue;
        }
        source = target;
      }
      if (st.isDirectory()) {
        stack.push({ abs, path: rel });
      } else if (st.isFile()) {
        out.push({
          abs: source,
          path: rel,
          keys: rel.map((c) => Buffer.from(c)),
          length: st.size,
        });
        if (out.length > MAX_FILES) {
          throw new UsageError(`more than ${MAX_FILES} files: too many for one torrent`);
        }
      } else {
        skip(shown, 'not a regular file');
      }
    }
  }
  return out;
}

/** Cuts the pieces into jobs of whole pieces, each a list of file segments. */
function makeJobs(files: SourceFile[], pieceLength: number, total: number, jobBytes: number) {
  const piecesPerJob = Math.max(1, Math.floor(jobBytes / pieceLength));
  const jobs: HashJob[] = [];
  let fi = 0;
  let fileOff = 0;
  const pieceCount = Math.ceil(total / pieceLength);
  for (let first = 0; first < pieceCount; first += piecesPerJob) {
    const bytes = Math.min(piecesPerJob * pieceLength, total - first * pieceLength);
    const segments: HashSegment[] = [];
    let left = bytes;
    while (left > 0) {
      const f = files[fi]!;
      const take = Math.min(left, f.length - fileOff);
      if (take > 0) {
        segments.push({ path: f.abs, offset: fileOff, length: take, fileSize: f.length });
      }
      left -= take;
      fileOff += take;
      if (fileOff === f.length) {
        fi++;
        fileOff = 0;
      }
    }
    jobs.push({ id: jobs.length, firstPiece: first, pieceLength, segments });
  }
  return jobs;
}

/** Runs the jobs on `threads` workers; fills and returns the concatenated piece hashes. */
/** Why each worker that stopped did so (kept until the worker is terminated). */
const workerFailures = new WeakMap<Worker, Error>();

async function hashAll(
  jobs: HashJob[],
  pieceCount: number,
  workers: Worker[],
  total: number,
  opts: CreateOptions,
): Promise<Buffer> {
  const hashes = Buffer.alloc(pieceCount * 20);
  if (jobs.length === 0) return hashes;
  let done = 0;
  let next = 0;
  let finished = 0;
  let stopped = false;
  const failure = (message: string, code: string | undefined): Error =>
    code === 'ECHANGED'
      ? new UsageError(message)
      : new DiskError(`cannot read a file: ${code ?? message}`);
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => {
        stopped = true;
        reject(e);
      };
      const complete = (id: number, out: Uint8Array): void => {
        hashes.set(out, jobs[id]!.firstPiece * 20);
        finished++;
        if (finished === jobs.length) {
          stopped = true;
          opts.signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      };
      const onAbort = () => fail(opts.signal!.reason as Error);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const give = (w: Worker) => {
        if (next < jobs.length) w.postMessage(jobs[next++]);
      };
      for (const w of workers) {
        const failed = workerFailures.get(w);
        if (failed !== undefined) return fail(failed);
        w.on('exit', () => fail(workerFailures.get(w) ?? new Error('a hashing thread stopped')));
        w.on(
          'message',
          (m: {
            id: number;
            progress?: number;
            hashes?: Uint8Array;
            error?: string;
            code?: string;
          }) => {
            if (m.progress !== undefined) {
              done += m.progress;
              opts.onProgress?.(done, total);
              return;
            }
            if (m.error !== undefined) {
              fail(failure(m.error, m.code));
              return;
            }
            complete(m.id, m.hashes!);
            give(w);
          },
        );
        give(w);
      }
      // This thread hashes too (it has nothing else to do), one job at a time, letting the
      // workers' messages and the abort signal through between jobs.
      const buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      const local = async (): Promise<void> => {
        while (!stopped && next < jobs.length) {
          const job = jobs[next++]!;
          let out: Uint8Array;
          try {
            out = hashJob(job, fs, crypto, buf, (n) => {
              done += n;
              opts.onProgress?.(done, total);
            });
          } catch (e) {
            const err = e as NodeJS.ErrnoException;
            return fail(failure(err.message, err.code));
          }
          complete(job.id, out);
          await new Promise((r) => setImmediate(r));
        }
      };
      void local();
    });
  } finally {
    for (const w of workers) {
      w.removeAllListeners('message');
      w.removeAllListeners('exit');
    }
  }
  return hashes;
}

function checkUrl(url: string, what: string, schemes: string[]): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (!schemes.includes(u.protocol)) {
    throw new UsageError(
      `${what} ${JSON.stringify(url)}: only ${schemes.map((s) => s.slice(0, -1)).join(', ')} URLs`,
    );
  }
  return url;
}

/** The magnet link of a torrent: info hash, name and trackers. */
export function magnetLink(infoHashHex: string, name: string, trackers: string[][]): string {
  let s = `magnet:?xt=urn:btih:${infoHashHex}&dn=${encodeURIComponent(name)}`;
  for (const tier of trackers) for (const url of tier) s += `&tr=${encodeURIComponent(url)}`;
  return s;
}

/** Makes a .torrent from `input` (a file or a folder). */
export async function createTorrent(
  input: string,
  opts: CreateOptions = {},
): Promise<CreatedTorrent> {
  const trackers = (opts.trackers ?? [])
    .map((tier) => tier.map((u) => checkUrl(u, 'tracker', ['http:', 'https:', 'udp:'])))
    .filter((tier) => tier.length > 0);
  const webSeeds = (opts.webSeeds ?? []).map((u) => checkUrl(u, 'web seed', ['http:', 'https:']));
  const skip = (rel: string, reason: string) => {
    log('skipped %s: %s', rel, reason);
    opts.onSkip?.(rel, reason);
  };

  const abs = path.resolve(input);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    throw ioError(input, e);
  }
  const named = entryName(Buffer.from(path.basename(abs)));
  if ('reason' in named)
    throw new UsageError(`${input}: cannot be a torrent's name: ${named.reason}`);
  const name = named.name;

  const threads = Math.max(1, Math.min(opts.threads ?? os.availableParallelism(), 8));
  const workers: Worker[] = [];
  try {
    return await createWith(input, abs, st, name, threads, workers, trackers, webSeeds, skip, opts);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

async function createWith(
  input: string,
  abs: string,
  st: Stats,
  name: string,
  threads: number,
  /** Filled with the workers started, which the caller terminates. */
  workers: Worker[],
  trackers: string[][],
  webSeeds: string[],
  skip: (rel: string, reason: string) => void,
  opts: CreateOptions,
): Promise<CreatedTorrent> {
  let files: SourceFile[];
  let multiFile: boolean;
  if (st.isDirectory()) {
    files = await listFolder(abs, opts, skip);
    files.sort(compareKeys);
    multiFile = true;
  } else if (st.isFile()) {
    files = [{ abs, path: [name], keys: [], length: st.size }];
    multiFile = false;
  } else {
    throw new UsageError(`${input} is neither a file nor a folder`);
  }
  const total = files.reduce((s, f) => s + f.length, 0);
  if (files.length === 0 || total === 0) {
    throw new UsageError(`${input}: no data to put in a torrent (a torrent cannot be empty)`);
  }

  const pieceLength =
    opts.pieceLength === undefined || opts.pieceLength === 'auto'
      ? autoPieceLength(total)
      : checkPieceLength(opts.pieceLength);
  const pieceCount = Math.ceil(total / pieceLength);
  // Several jobs per thread balance the load; each at most 64 MiB so progress moves.
  const jobBytes = Math.min(
    64 * 1024 * 1024,
    Math.max(pieceLength, Math.ceil(total / (threads * 8))),
  );
  const jobs = makeJobs(files, pieceLength, total, jobBytes);
  log(
    '%d files, %d bytes, %d pieces of %d, %d jobs on %d threads',
    files.length,
    total,
    pieceCount,
    pieceLength,
    jobs.length,
    threads,
  );
  opts.onProgress?.(0, total);
  // This thread hashes as well: threads - 1 workers, and none for a single job.
  for (let i = 0; i < Math.min(threads - 1, jobs.length - 1); i++) {
    const w = new Worker(HASH_WORKER_SOURCE, { eval: true });
    // A worker that fails before it is given work is reported when hashing starts.
    w.on('error', (e) => workerFailures.set(w, e));
    w.on('exit', () => {
      if (!workerFailures.has(w)) workerFailures.set(w, new Error('a hashing thread stopped'));
    });
    workers.push(w);
  }
  const pieces = await hashAll(jobs, pieceCount, workers, total, opts);

  const info: Record<string, unknown> = { name, 'piece length': pieceLength, pieces };
  if (multiFile) info['files'] = files.map((f) => ({ length: f.length, path: f.path }));
  else info['length'] = total;
  if (opts.private) info['private'] = 1;
  if (opts.source !== undefined && opts.source !== '') info['source'] = opts.source;

  const root: Record<string, unknown> = { info };
  if (trackers.length > 0) root['announce'] = trackers[0]![0];
  if (trackers.length > 1 || (trackers[0]?.length ?? 0) > 1) root['announce-list'] = trackers;
  if (webSeeds.length > 0) root['url-list'] = webSeeds;
  if (opts.comment !== undefined && opts.comment !== '') root['comment'] = opts.comment;
  if (opts.createdBy !== undefined && opts.createdBy !== '') root['created by'] = opts.createdBy;
  if (opts.creationDate !== undefined) root['creation date'] = opts.creationDate;

  // bencode.encode writes keys in sorted order: canonical, so the info hash is that of encode(info).
  const torrent = encode(root);
  // Loading it back checks it against every rule tdl applies to other people's torrents.
  const m = parseTorrent(torrent);
  return {
    torrent,
    infoHash: m.infoHash,
    infoHashHex: m.infoHashHex,
    magnet: magnetLink(m.infoHashHex, name, trackers),
    name,
    fileCount: files.length,
    multiFile,
    length: total,
    pieceLength,
    pieceCount,
  };
}

// Exposed for tests.
export const _internal = { makeJobs };
