/**
 * Reading pieces and blocks back from the output (DiskStorage's reads): the byte ranges of a
 * piece are turned into runs, one per stretch of a file (contiguous spans of one file merged),
 * and each run is read from wherever its bytes are: the file, zeros (padding, a file not on disk,
 * bytes past a file's end), or the parts file's copy of a boundary piece where the file does not
 * hold them (a file not selected, or not written that far). A file not selected that is on disk
 * all the same (an earlier, wider download; the user's own copy) is read, never written, for the
 * bytes a boundary piece has in it when the parts file holds no copy.
 *
 * Zeros read in place of bytes that are not on disk (past a file's end, a file not there) are
 * reported to the caller of an unverified read: a piece that hashes right only thanks to them is
 * not on disk, and the start-up check does not count it as present.
 */
import { readSync } from 'node:fs';
import {
  eachLimited,
  FS_PARALLEL,
  INLINE_MAX_BYTES,
  OPEN_READ,
  toDiskError,
  fdCall,
  type Inline,
} from './fs-util.js';
import { OutputChangedError } from './stamps.js';
import type { Span } from './layout.js';
import type { PartsFile } from './parts.js';

/** A stretch of the buffer to fill: `length` bytes at `at`, from one file or the parts copy. */
export interface Run {
  /** -1: from the parts file (piece `piece`, at `fileOffset` in it). */
  fileIndex: number;
  fileOffset: number;
  at: number;
  length: number;
  piece?: number;
}

/** What the reads need of the storage. */
export interface ReadSource {
  /** The parts file (copies of boundary pieces), if any. */
  parts(): PartsFile | null;
  /** File `i` is a real file on disk (padding never is: it reads as zeros). */
  onDisk(i: number): boolean;
  /** BEP 47 padding: zeros by definition, so reading it as zeros is no lack of bytes. */
  isPadding(i: number): boolean;
  /** Does file `s.fileIndex` hold this span's bytes (padding always does)? */
  holds(s: Span): boolean;
  /** Piece `index` is read from its copy in the parts file alone (its files hold other bytes). */
  copyOnly(index: number): boolean;
  withFile<T>(i: number, fn: (fd: number) => Promise<T>): Promise<T>;
  currentPath(i: number): string | null;
  /**
   * Where a file not selected may be, to read only: its final path (an earlier, complete
   * download), then its working path (an earlier download of it, interrupted); null for any
   * other file.
   */
  unselectedPaths(i: number): readonly string[] | null;
  /**
   * Small reads of the files are made inline while the disk answers fast (as small writes are):
   * a check of thousands of small files would otherwise wait for a thread-pool round trip per
   * file.
   */
  readonly inline?: Inline;
}

/**
 * Told of `length` bytes at `at` in the buffer that were not on disk and read as zeros (past a
 * file's end, a file that is not there).
 */
export type AbsentFn = (at: number, length: number) => void;

/** What reading a file not selected found: a missing file is not a read failure. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR']);

/**
 * Append the runs for these spans of piece `index`, at `base` in the buffer. A piece with a copy
 * in the parts file is read from its files where they hold its bytes and from the copy
 * elsewhere; other pieces only from their files (files not selected read as zeros).
 */
export function addPieceRuns(
  src: ReadSource,
  runs: Run[],
  index: number,
  spans: readonly Span[],
  base: number,
): void {
  if (!src.parts()?.has(index)) {
    addRuns(runs, spans, base);
    return;
  }
  const copyOnly = src.copyOnly(index);
  for (const s of spans) {
    if (!copyOnly && src.holds(s)) addRuns(runs, [s], base);
    else {
      runs.push({
        fileIndex: -1,
        fileOffset: s.pieceOffset,
        at: base + s.pieceOffset,
        length: s.length,
        piece: index,
      });
    }
  }
}

/**
 * Fill `buf` from these runs, up to FS_PARALLEL at once (each fills its own stretch: a batch of
 * the check spanning thousands of small files would otherwise wait for one thread-pool round
 * trip per file, in turn). DiskError on a failed read (the first; no run starts after it).
 * `verified`: the bytes are those of verified pieces (to serve or stream), so a file that ends
 * before them has changed on disk since: OutputChangedError, never zeros in their place.
 * Otherwise such bytes read as zeros and are told to `absent`.
 */
export async function readRuns(
  src: ReadSource,
  runs: readonly Run[],
  buf: Buffer,
  verified = false,
  absent?: AbsentFn,
): Promise<void> {
  const one = async (r: Run): Promise<void> => {
    if (r.piece !== undefined) {
      const n = await src.parts()!.read(r.piece, r.fileOffset, r.length, buf, r.at);
      if (n < r.length) absent?.(r.at + n, r.length - n);
      return;
    }
    if (!src.onDisk(r.fileIndex)) {
      const sides = src.unselectedPaths(r.fileIndex);
      if (sides !== null) await readUnselected(sides, r, buf, verified, absent);
      else {
        buf.fill(0, r.at, r.at + r.length);
        if (!src.isPadding(r.fileIndex)) absent?.(r.at, r.length);
      }
      return;
    }
    // Inline reads give the event loop its turns (see Inline): a batch may be thousands of runs.
    if (src.inline?.on) await src.inline.pace();
    try {
      await src.withFile(r.fileIndex, (fd) =>
        readRun(
          fd,
          r,
          buf,
          verified ? src.currentPath(r.fileIndex) : undefined,
          absent,
          src.inline,
        ),
      );
    } catch (e) {
      throw toDiskError(e, `cannot read ${src.currentPath(r.fileIndex)}`);
    }
  };
  if (runs.length === 1) return one(runs[0]!);
  await eachLimited(runs, FS_PARALLEL, one);
}

/**
 * Read run `r` from `fd` into `buf`. A file that ends before the run reads as zeros from there
 * (told to `absent`), except for verified data, named by `verifiedFile` (OutputChangedError).
 */
async function readRun(
  fd: number,
  r: Run,
  buf: Buffer,
  verifiedFile: string | null | undefined,
  absent?: AbsentFn,
  inline?: Inline,
): Promise<void> {
  const sync = inline?.on === true && r.length <= INLINE_MAX_BYTES;
  let done = 0;
  while (done < r.length) {
    const at = r.at + done;
    const n = sync
      ? inline!.run(() => readSync(fd, buf, at, r.length - done, r.fileOffset + done))
      : await fdCall.read(fd, buf, at, r.length - done, r.fileOffset + done);
    if (n <= 0) {
      if (verifiedFile !== undefined) throw shortError(verifiedFile);
      buf.fill(0, r.at + done, r.at + r.length);
      absent?.(r.at + done, r.length - done);
      return;
    }
    done += n;
  }
}

/**
 * Read a run from a file not selected, from the first of `files` that is a regular file, opened
 * for this read only (a boundary piece's few bytes), never through a link nor waiting on a FIFO
 * (OPEN_READ). When none is there, the run reads as zeros, as do bytes past the file's end (told
 * to `absent`, as a short file's are); not for verified data, whose bytes must be there
 * (OutputChangedError).
 */
async function readUnselected(
  files: readonly string[],
  r: Run,
  buf: Buffer,
  verified: boolean,
  absent?: AbsentFn,
): Promise<void> {
  for (const file of files) {
    const fd = await openUnselected(file);
    if (fd === null) continue;
    try {
      await readRun(fd, r, buf, verified ? file : undefined, absent);
    } catch (e) {
      throw toDiskError(e, `cannot read ${file}`);
    } finally {
      await fdCall.close(fd).catch(() => {});
    }
    return;
  }
  if (verified) throw shortError(files[0] ?? null);
  buf.fill(0, r.at, r.at + r.length);
  absent?.(r.at, r.length);
}

/** `file` opened to read, when it is a regular file; null when it is not there or not one. */
async function openUnselected(file: string): Promise<number | null> {
  let fd: number | null = null;
  try {
    fd = await fdCall.open(file, OPEN_READ, 0);
    if ((await fdCall.stat(fd)).isFile()) return fd;
    await fdCall.close(fd).catch(() => {});
    return null;
  } catch (e) {
    if (fd !== null) await fdCall.close(fd).catch(() => {});
    if (!ABSENT.has((e as NodeJS.ErrnoException).code ?? '')) {
      throw toDiskError(e, `cannot read ${file}`);
    }
    return null;
  }
}

function shortError(file: string | null): OutputChangedError {
  return new OutputChangedError(
    `${file ?? 'a file'} is shorter than its verified data: it changed on disk`,
  );
}

/** Append the spans of a piece, at `base` in the buffer, to runs, merging what is contiguous. */
function addRuns(runs: Run[], spans: readonly Span[], base: number): void {
  for (const s of spans) {
    const at = base + s.pieceOffset;
    const r = runs[runs.length - 1];
    if (r && r.fileIndex === s.fileIndex && r.at + r.length === at) r.length += s.length;
    else runs.push({ fileIndex: s.fileIndex, fileOffset: s.fileOffset, at, length: s.length });
  }
}
