/**
 * Making a .torrent (v1) from a file or a folder: `tdl create`.
 *
 * - Deterministic: files are sorted by the bytes of their path, component by component; without
 *   a creation date the same input gives byte-identical output.
 * - Streaming: files are read through 1 MiB buffers, never whole, by this thread and
 *   `threads - 1` worker threads (see hash-worker.ts), each taking jobs of whole pieces from a
 *   shared counter. The workers are started first, so they boot while the folder is listed.
 * - Attributes: a file its owner may execute gets BEP 47 `x` (as libtorrent marks it).
 * - Path rules: which files and links a folder puts in the torrent, and what is skipped (said
 *   through `onSkip`) or refused, are in create-list.ts.
 */
import crypto from 'node:crypto';
import fs, { readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DiskError, systemErrorText, UsageError } from '../errors.js';
import { Bencoded, encodeCanonical } from './bencode-encode.js';
import {
  CTL_NEXT,
  CTL_STOP,
  READ_BUFFER_BYTES,
  fileStarts,
  hashJob,
  hashJobs,
  type HashPlan,
} from './hash-worker.js';
import {
  MAX_HASH_THREADS,
  defaultHashThreads,
  dropPrestartedWorkers,
  startHashWorker,
  takeHashWorkers,
  WORKER_MIN_BYTES,
  workerFailures,
} from './hash-prestart.js';
import { logger } from '../log.js';
import {
  checkUnchanged,
  entryName,
  identityOf,
  ioError,
  isOutputEntry,
  listFolder,
  sameFile,
  sourceFile,
  type SourceFile,
} from './create-list.js';
import { MAX_PIECE_LENGTH, MAX_TORRENT_FILE_BYTES, parseTorrent } from './torrent.js';
import { monotonicMs } from '../clock.js';
import { readBuffer } from '../read-buffer.js';

const log = logger('tdl:create');

export const MIN_PIECE_LENGTH = 16 * 1024;
/** Largest piece length `auto` picks. */
export const MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024;
/** `auto` aims at no more than this many pieces (and more than half as many). */
export const AUTO_MAX_PIECES = 2000;
/** Largest hashing job: the last one ends at most this much after the others. */
const JOB_MAX_BYTES = 4 * 1024 * 1024;

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
  /**
   * Where the torrent will be written (its real path). The file there (the same entry, whatever
   * path leads to it, or a link to it) is never read into the torrent: an earlier `.torrent`
   * inside the folder is skipped, and any other input file is refused (writing would destroy
   * it). Another name of the same file (a hard link) is an input file like any other: the
   * torrent replaces the entry, and the link keeps what it holds.
   */
  exclude?: string;
  /**
   * The file the torrent is written into in place (`-o -` with stdout redirected to a file):
   * never read into the torrent, whatever names it, since writing changes it.
   */
  excludeFile?: { dev: number; ino: number };
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

/**
 * The piece length `auto` picks: the smallest power of two that gives at most AUTO_MAX_PIECES
 * pieces (so between 1,000 and 2,000 pieces), kept within 16 KiB–16 MiB.
 */
export function autoPieceLength(total: number): number {
  let p = MIN_PIECE_LENGTH;
  while (p < MAX_AUTO_PIECE_LENGTH && Math.ceil(total / p) > AUTO_MAX_PIECES) p *= 2;
  return p;
}

/**
 * A torrent over the size tdl and other clients load (MAX_TORRENT_FILE_BYTES), before any data is
 * read: how long it would be, and the piece length that makes it fit when fewer pieces can
 * (`rest`: its bytes other than the piece hashes).
 */
function tooLarge(bytes: number, rest: number, total: number, pieceLength: number): UsageError {
  const said = `the torrent would be ${bytes} bytes, more than the ${MAX_TORRENT_FILE_BYTES} that tdl and other clients load`;
  for (let p = pieceLength * 2; p <= MAX_PIECE_LENGTH; p *= 2) {
    // The length of the pieces string's header changes by a digit at most.
    if (rest + Math.ceil(total / p) * 20 < MAX_TORRENT_FILE_BYTES) {
      const size = p >= 1 << 20 ? `${p / (1 << 20)}M` : `${p / 1024}K`;
      return new UsageError(`${said}: give --piece-length ${size} or more (fewer pieces)`);
    }
  }
  return new UsageError(`${said}, whatever the piece length: its file list alone is too long`);
}

/**
 * Parses `262144`, `256K`, `256k`, `256KiB`, `4M`, `4MiB`, `1.5M`... Throws UsageError naming
 * `option`.
 */
export function parseSize(text: string, option = '--piece-length'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `${option} ${JSON.stringify(text)}: not a size (e.g. 262144, 256K, 4M, or auto)`,
    );
  }
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const n = Number(m[1]) * mult;
  if (!Number.isInteger(n)) throw new UsageError(`${option} ${text}: not a whole number of bytes`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${option} ${text}: too large`);
  return n;
}

/** Checks an explicit piece length: a power of two from 16 KiB to MAX_PIECE_LENGTH. */
export function checkPieceLength(n: number): number {
  if (n < MIN_PIECE_LENGTH || n > MAX_PIECE_LENGTH || (n & (n - 1)) !== 0) {
    throw new UsageError(
      `--piece-length ${n}: must be a power of two from ${MIN_PIECE_LENGTH} (16K) to ${MAX_PIECE_LENGTH} (64M)`,
    );
  }
  return n;
}

/**
 * `n` hashing workers: those started early (hash-prestart.ts), then new ones; they boot while
 * this thread lists the files.
 */
function startWorkers(n: number): Worker[] {
  const workers = takeHashWorkers(n);
  while (workers.length < n) workers.push(startHashWorker());
  return workers;
}

/** How long this thread hashes before it lets its event loop run (messages, Ctrl-C). */
const YIELD_MS = 20;

/**
 * Hashes every piece of `files` on this thread and the workers, each taking the next job from
 * a shared counter; returns the concatenated piece hashes. `first` runs on this thread once the
 * workers have their jobs, before it hashes any itself (whatever it throws stops the run).
 */
async function hashAll(
  files: SourceFile[],
  pieceLength: number,
  pieceCount: number,
  jobPieces: number,
  workers: Worker[],
  total: number,
  opts: CreateOptions,
  first: () => void,
): Promise<Buffer> {
  const jobCount = Math.ceil(pieceCount / jobPieces);
  const plan: HashPlan = {
    paths: files.map((f) => f.abs),
    sizes: files.map((f) => f.length),
    pieceLength,
    pieceCount,
    jobPieces,
    jobCount,
    control: new SharedArrayBuffer(3 * 4),
    progress: new SharedArrayBuffer((workers.length + 1) * 8),
    hashes: new SharedArrayBuffer(pieceCount * 20),
  };
  const control = new Int32Array(plan.control);
  const progress = new BigInt64Array(plan.progress);
  const done = () => {
    let n = 0;
    for (let i = 0; i < progress.length; i++) n += Number(Atomics.load(progress, i));
    return n;
  };
  const failure = (message: string, code: string | undefined, file?: string): Error =>
    code === 'ECHANGED'
      ? new UsageError(`${message}: no torrent written (run tdl create again)`)
      : new DiskError(
          `cannot read ${file ?? 'a file'}: ${systemErrorText(Object.assign(new Error(message), { code }))}`,
        );
  let settled = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const finish = (e?: Error) => {
        if (settled) return;
        settled = true;
        // Hashers still running stop after their current job.
        Atomics.store(control, CTL_STOP, 1);
        opts.signal?.removeEventListener('abort', onAbort);
        if (e !== undefined) return reject(e);
        opts.onProgress?.(total, total);
        resolve();
      };
      const onAbort = () => finish(opts.signal!.reason as Error);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // A worker that has answered is done and may exit; only an exit before its answer fails.
      const answered = new Set<Worker>();
      for (const [i, w] of workers.entries()) {
        const failed = workerFailures.get(w);
        if (failed !== undefined) return finish(failed);
        w.on('exit', () => {
          if (!answered.has(w))
            finish(workerFailures.get(w) ?? new Error('a hashing thread stopped'));
        });
        w.on('message', (m: { last?: boolean; error?: string; code?: string; path?: string }) => {
          answered.add(w);
          if (m.error !== undefined) finish(failure(m.error, m.code, m.path));
          else if (m.last) finish();
        });
        w.postMessage({ plan, slot: i + 1 });
      }
      // This thread hashes too (it has nothing else to do), letting the workers' messages and
      // the abort signal through every YIELD_MS. Whoever finishes the last job says so.
      const buf = readBuffer(READ_BUFFER_BYTES + 1);
      const starts = fileStarts(plan.sizes);
      const local = async (): Promise<void> => {
        if (settled) return;
        try {
          first();
        } catch (e) {
          return finish(e as Error);
        }
        while (!settled) {
          const since = monotonicMs();
          let last: boolean;
          try {
            last = hashJobs(
              plan,
              0,
              fs,
              crypto,
              buf,
              starts,
              () => monotonicMs() - since < YIELD_MS,
              hashJob,
            );
          } catch (e) {
            const err = e as NodeJS.ErrnoException;
            return finish(failure(err.message, err.code, err.path));
          }
          if (last) return finish();
          // No job left to take: the workers finish theirs and the last one says so.
          if (Atomics.load(control, CTL_NEXT) >= jobCount) return;
          opts.onProgress?.(done(), total);
          await new Promise((r) => setImmediate(r));
        }
      };
      opts.onProgress?.(0, total);
      void local();
    });
  } finally {
    for (const w of workers) {
      w.removeAllListeners('message');
      w.removeAllListeners('exit');
    }
  }
  // A copy the size of the hashes, in memory of its own (not shared with the workers).
  return Buffer.from(new Uint8Array(plan.hashes));
}

/**
 * The bencoded `files` list, built as one string and converted once: through the generic
 * encoder, thousands of small dictionaries cost more than the rest of the torrent (the code
 * runs once, before the JIT has warmed up).
 */
function encodeFiles(files: SourceFile[]): Bencoded {
  const parts: string[] = ['l'];
  for (const f of files) {
    let p = '';
    for (const c of f.path) p += `${Buffer.byteLength(c)}:${c}`;
    if (f.symlink === undefined) {
      parts.push(`d${f.executable ? '4:attr1:x' : ''}6:lengthi${f.length}e4:pathl${p}ee`);
    } else {
      let t = '';
      for (const c of f.symlink) t += `${Buffer.byteLength(c)}:${c}`;
      parts.push(`d4:attr1:l6:lengthi0e4:pathl${p}e12:symlink pathl${t}ee`);
    }
  }
  parts.push('e');
  return new Bencoded(Buffer.from(parts.join('')));
}

function sha1(b: Uint8Array): Buffer {
  return crypto.createHash('sha1').update(b).digest();
}

function checkUrl(url: string, what: string, schemes: string[]): string {
  // The URL parser would take ' ' (and drop tabs and newlines); the torrent holds the text as
  // given, which other clients would not. Said first: in a host, a space fails the parser,
  // whose "not a URL" would not say why.
  if (/[\s\x00-\x1f\x7f]/.test(url)) {
    throw new UsageError(
      `${what} ${JSON.stringify(url)} holds white space or control characters (percent-encode them: %20)`,
    );
  }
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
  // The URL parser also forgives a missing host (`http:///x` is http://x/) and a missing `//`;
  // the torrent holds the text as given, which a client's reader (tdl's too) drops.
  if (u.hostname === '' || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]/i.test(url)) {
    throw new UsageError(`${what} ${JSON.stringify(url)} has no host (scheme://host/…)`);
  }
  if (u.port === '0') throw new UsageError(`${what} ${JSON.stringify(url)}: port 0`);
  // A UDP tracker has no default port: a client could not reach one without it.
  if (u.protocol === 'udp:' && u.port === '') {
    throw new UsageError(`${what} ${JSON.stringify(url)} has no port (udp://host:port)`);
  }
  return url;
}

/** The magnet link of a torrent: info hash, name, trackers and web seeds (`ws`). */
export function magnetLink(
  infoHashHex: string,
  name: string,
  trackers: string[][],
  webSeeds: readonly string[] = [],
): string {
  let s = `magnet:?xt=urn:btih:${infoHashHex}&dn=${encodeURIComponent(name)}`;
  for (const tier of trackers) for (const url of tier) s += `&tr=${encodeURIComponent(url)}`;
  for (const url of webSeeds) s += `&ws=${encodeURIComponent(url)}`;
  return s;
}

/** Where the symbolic link at `p` points, or null when `p` is not one. */
function linkTarget(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}

/** Makes a .torrent from `input` (a file or a folder). */
export async function createTorrent(
  input: string,
  opts: CreateOptions = {},
): Promise<CreatedTorrent> {
  try {
    return await createFrom(input, opts);
  } finally {
    // Workers started early for this command and not taken (a bad argument, a small file).
    dropPrestartedWorkers();
  }
}

async function createFrom(input: string, opts: CreateOptions): Promise<CreatedTorrent> {
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
    st = statSync(abs);
  } catch (e) {
    // A path that is not there is a mistake on the command line (exit 2), as for a .torrent.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new UsageError(`${input}: a loop of symbolic links`);
    const link = linkTarget(abs);
    if (link !== null && (code === 'ENOENT' || code === 'ENOTDIR')) {
      throw new UsageError(`${input}: a symbolic link to ${link}, which does not exist`);
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // Node reads its arguments as UTF-8: bytes that are not come as U+FFFD, a name no file has.
      throw new UsageError(
        input.includes('\uFFFD')
          ? `${input}: no such file or folder (its name is not valid UTF-8: a torrent could not ` +
              'name it either; rename it)'
          : `${input}: no such file or folder`,
      );
    }
    throw ioError(input, e);
  }
  const named = entryName(Buffer.from(path.basename(abs)));
  if ('reason' in named) {
    // Said of the torrent's own name: renamed, it is not "included", it is the torrent.
    const reason = named.reason.replace(' to include it)', ')');
    throw new UsageError(`${input}: cannot be a torrent's name: ${reason}`);
  }
  const name = named.name;

  const threads = Math.max(1, Math.min(opts.threads ?? defaultHashThreads(), MAX_HASH_THREADS));
  const workers: Worker[] = [];
  try {
    // Started first: a worker takes tens of milliseconds to boot, during which this thread
    // lists the folder and starts hashing. A file this thread hashes alone in about that
    // time gets none.
    if (st.isDirectory() || (st.isFile() && st.size > WORKER_MIN_BYTES)) {
      workers.push(...startWorkers(threads - 1));
    }
    dropPrestartedWorkers();
    const made = await createWith(
      input,
      abs,
      st,
      name,
      threads,
      workers,
      trackers,
      webSeeds,
      skip,
      opts,
    );
    // Every job is done, so the workers read nothing more: they are told to stop and their
    // exit is not waited for (tearing a thread down took from 1 to over 100 ms on a busy
    // 2-core machine, all of it on the way out).
    for (const w of workers) {
      void w.terminate();
      w.unref();
    }
    workers.length = 0;
    return made;
  } finally {
    // After a failure a worker may still be reading: wait for it.
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
    multiFile = true;
  } else if (st.isFile()) {
    const out = opts.exclude;
    if (
      out !== undefined &&
      sameFile(identityOf(out), st) &&
      isOutputEntry(realpathSync.native(abs), out)
    ) {
      throw new UsageError(`refusing to write the torrent over its own input, ${input}`);
    }
    files = [sourceFile(abs, [name], st)];
    multiFile = false;
  } else {
    throw new UsageError(`${input} is neither a file nor a folder`);
  }
  const total = files.reduce((s, f) => s + f.length, 0);
  if (!files.some((f) => f.symlink === undefined) || total === 0) {
    throw new UsageError(`${input}: no data to put in a torrent (a torrent cannot be empty)`);
  }

  const pieceLength =
    opts.pieceLength === undefined || opts.pieceLength === 'auto'
      ? autoPieceLength(total)
      : checkPieceLength(opts.pieceLength);
  const pieceCount = Math.ceil(total / pieceLength);
  // Small jobs keep the threads balanced to the end (taking one costs an atomic add), about
  // 16 per thread, at most JOB_MAX_BYTES.
  const jobBytes = Math.min(JOB_MAX_BYTES, Math.ceil(total / (threads * 16)));
  const jobPieces = Math.max(1, Math.floor(jobBytes / pieceLength));
  log(
    '%d files, %d bytes, %d pieces of %d, %d jobs on %d threads',
    files.length,
    total,
    pieceCount,
    pieceLength,
    Math.ceil(pieceCount / jobPieces),
    workers.length + 1,
  );

  const info: Record<string, unknown> = { name, 'piece length': pieceLength };
  if (multiFile) info['files'] = encodeFiles(files);
  else {
    info['length'] = total;
    if (files[0]!.executable) info['attr'] = 'x';
  }
  if (opts.private) info['private'] = 1;
  if (opts.source !== undefined && opts.source !== '') info['source'] = opts.source;

  const root: Record<string, unknown> = { info };
  if (trackers.length > 0) root['announce'] = trackers[0]![0];
  if (trackers.length > 1 || (trackers[0]?.length ?? 0) > 1) root['announce-list'] = trackers;
  if (webSeeds.length > 0) root['url-list'] = webSeeds;
  if (opts.comment !== undefined && opts.comment !== '') root['comment'] = opts.comment;
  if (opts.createdBy !== undefined && opts.createdBy !== '') root['created by'] = opts.createdBy;
  if (opts.creationDate !== undefined) root['creation date'] = opts.creationDate;

  // Keys are written in sorted order: canonical, so the info hash is that of encode(info).
  const encodeWith = (pieces: Buffer): Buffer => {
    info['pieces'] = pieces;
    return encodeCanonical(root);
  };
  // The torrent with its piece hashes all zero is loaded back, which checks it against every
  // rule tdl applies to other people's torrents (and finds where `info` lies in it). This
  // thread does it while the workers start hashing (the jobs it leaves are theirs), so a
  // torrent tdl would refuse is refused before the data is read, and a large file list is
  // checked in time that was not on the way to the end. The real torrent differs only in the
  // bytes of the hashes.
  let draftLength = 0;
  let infoStart = 0;
  let infoEnd = 0;
  const check = (): void => {
    const draft = encodeWith(Buffer.alloc(pieceCount * 20));
    if (draft.length > MAX_TORRENT_FILE_BYTES) {
      throw tooLarge(draft.length, draft.length - pieceCount * 20, total, pieceLength);
    }
    const m = parseTorrent(draft);
    draftLength = draft.length;
    infoStart = m.info.byteOffset - draft.byteOffset;
    // parseTorrent hashed m.info itself, a view of this draft (its own input).
    infoEnd = infoStart + m.info.length;
  };
  const pieces = await hashAll(
    // Links hold no data (length 0), so leaving them out moves no offset.
    files.filter((f) => f.symlink === undefined),
    pieceLength,
    pieceCount,
    jobPieces,
    workers,
    total,
    opts,
    check,
  );
  checkUnchanged(files);
  const torrent = encodeWith(pieces);
  if (torrent.length !== draftLength) throw new Error('the torrent changed size once hashed');
  const infoHash = sha1(torrent.subarray(infoStart, infoEnd));
  const infoHashHex = infoHash.toString('hex');
  return {
    torrent,
    infoHash,
    infoHashHex,
    magnet: magnetLink(infoHashHex, name, trackers, webSeeds),
    name,
    fileCount: files.length,
    multiFile,
    length: total,
    pieceLength,
    pieceCount,
  };
}
