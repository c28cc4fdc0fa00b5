/**
 * What is already on disk: the start-up check of a download, and the full re-hash of `verify`.
 *
 * The start-up check reads the resume file and decides, file by file, whether to believe it:
 *
 * - a file whose size, mtime and inode equal the checkpoint's is unchanged since then: its
 *   recorded pieces are taken as present without reading them;
 * - a file with the same size and inode but a newer mtime is trusted only when the journal names
 *   a piece that touches it (tdl itself wrote there after the checkpoint, the crash case) and
 *   that time is no later than the resume file's last write allows (JOURNAL_SLACK_NS): a change
 *   made after the crash (a copy put over the file) is not tdl's;
 * - any other file that exists (no resume file, another torrent's, a corrupt one, a file changed
 *   by someone else) is re-hashed piece by piece.
 *
 * Pieces named in the journal are always re-hashed: they may or may not have reached the disk.
 * A piece is present only if its bytes are on disk, and it was recorded by a trusted checkpoint
 * or its bytes hash right. Bytes past a file's end read as zeros when hashing, so a piece whose
 * content ends in zeros (a disk image, a preallocated file) can hash right over a file cut short:
 * it is not present (it is fetched again), since nothing would ever extend the file to hold it
 * and serving or streaming it would find the file shorter than its verified data.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { DiskError, systemErrorText } from '../errors.js';
import { logger } from '../log.js';
import { Bitfield } from '../wire/bitfield.js';
import type { DiskStorage } from './disk.js';
import { OPEN_READ } from './fs-util.js';
import type { FileStamp } from './stamps.js';
import { hashOf, hashPieces, isZeroPiece, type ProgressFn } from './hash-pieces.js';
import type { Layout } from './layout.js';
import {
  checkpointSize,
  decodeResume,
  RESUME_MAGIC,
  resumeMismatch,
  stampAt,
  type DecodedResume,
  type StampTable,
} from './resume.js';

const log = logger('tdl:resume');

export interface CheckTorrent {
  infoHash: Buffer;
  pieceLength: number;
  length: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 piece hashes. */
  pieceHashes: Buffer;
}

/**
 * Read a resume file, at most what a resume file of this torrent (of `fileCount` files) can
 * hold. Null if absent; anything but a regular file (a FIFO, a folder) is not one. A file that
 * is not tdl's (it does not start as every resume file does) throws DiskError: the next
 * checkpoint would replace it, and the end of the download remove it.
 */
export async function readResumeFile(
  file: string,
  t: CheckTorrent,
  fileCount: number,
): Promise<DecodedResume | null> {
  const max = checkpointSize(t.pieceCount, fileCount) + 8 * t.pieceCount + 64;
  let h;
  try {
    h = await open(file, OPEN_READ);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    // O_NOFOLLOW's answer: never read through (it is replaced by the next checkpoint).
    if (code === 'ELOOP') return { ok: false, reason: 'a symbolic link, not followed' };
    return { ok: false, reason: `cannot read it: ${systemErrorText(e)}` };
  }
  try {
    const st = await h.stat({ bigint: true });
    if (!st.isFile()) return { ok: false, reason: 'not a regular file' };
    const buf = Buffer.allocUnsafe(Math.min(Number(st.size), max));
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await h.read(buf, done, buf.length - done, done);
      if (bytesRead <= 0) break;
      done += bytesRead;
    }
    const head = Math.min(done, RESUME_MAGIC.length);
    if (!buf.subarray(0, head).equals(RESUME_MAGIC.subarray(0, head))) {
      throw new DiskError(
        `${file} is in the way of the resume file: it is not a tdl resume file (move it away)`,
      );
    }
    const decoded = decodeResume(buf.subarray(0, done));
    return decoded.ok ? { ...decoded, writtenNs: st.mtimeNs } : decoded;
  } catch (e) {
    if (e instanceof DiskError) throw e;
    return { ok: false, reason: `cannot read it: ${systemErrorText(e)}` };
  } finally {
    await h.close().catch(() => {});
  }
}

/**
 * The pieces a download of this torrent had begun to write when it stopped (its resume file's
 * journal; empty when there is no usable resume file of this torrent). Read only: for `tdl
 * verify`, which counts a failed one as missing (tdl's own unfinished write), as the download
 * does, rather than as other data.
 */
export async function begunPieces(
  file: string,
  t: CheckTorrent,
  fileCount: number,
): Promise<ReadonlySet<number>> {
  let decoded: DecodedResume | null;
  try {
    decoded = await readResumeFile(file, t, fileCount);
  } catch {
    return new Set(); // a file of the user's there: no journal
  }
  const usable = usableResume(decoded, t, fileCount);
  return usable?.ok ? new Set(usable.journal) : new Set();
}

/**
 * A resume file as read, judged against this torrent: itself when it is this torrent's (its
 * fields one by one: a Metainfo's `files` is made whole when read), else why it is not; null
 * when there is none.
 */
function usableResume(
  decoded: DecodedResume | null,
  t: CheckTorrent,
  fileCount: number,
): DecodedResume | null {
  if (!decoded?.ok) return decoded;
  const why = resumeMismatch(decoded.state, {
    infoHash: t.infoHash,
    pieceLength: t.pieceLength,
    length: t.length,
    pieceCount: t.pieceCount,
    files: fileCount,
  });
  return why ? { ok: false, reason: why } : decoded;
}

export type FileTrust = 'new' | 'trusted' | 'untrusted';

/**
 * How much later than the resume file's last write a file tdl wrote after its checkpoint may be
 * stamped and still be believed (see planStartup): a write begins once its journal entry is
 * out, behind the thread pool's queue. Later than that, the whole file is hashed.
 */
export const JOURNAL_SLACK_NS = 1_000_000_000n;

export interface StartupPlan {
  /** Pieces believed from the resume file without reading them. */
  trusted: Bitfield;
  /** Pieces to re-hash, ascending. */
  toHash: number[];
  /** Per file. */
  fileTrust: FileTrust[];
  resume: 'none' | 'used' | 'ignored';
  /** Why the resume file was ignored. */
  reason?: string;
  /** Pieces the journal says tdl started to write (their bytes may be its own, unfinished). */
  journal: ReadonlySet<number>;
}

/**
 * What the start-up check reads of each file, one file at a time: DiskStorage answers from its
 * flags, with no object per file.
 */
export interface FileFacts {
  readonly fileCount: number;
  existed(i: number): boolean;
  isPadding(i: number): boolean;
  isSelected(i: number): boolean;
}

type FileFactList = readonly { existed: boolean; padding?: boolean; selected?: boolean }[];

function factsOf(files: FileFactList | FileFacts): FileFacts {
  if (!Array.isArray(files)) return files as FileFacts;
  const list = files as FileFactList;
  return {
    fileCount: list.length,
    existed: (i) => list[i]!.existed,
    isPadding: (i) => list[i]!.padding === true,
    isSelected: (i) => list[i]!.selected !== false,
  };
}

/** Decide, from the resume file and the files as they are now, what to believe and what to hash. */
export function planStartup(
  layout: Layout,
  fileFacts: FileFactList | FileFacts,
  stamps: readonly (FileStamp | null)[] | StampTable,
  decoded: DecodedResume | null,
  t: CheckTorrent,
): StartupPlan {
  const files = factsOf(fileFacts);
  let resume: StartupPlan['resume'] = 'none';
  let reason: string | undefined;
  let state = null;
  let journal = new Set<number>();
  let writtenNs: bigint | undefined;
  const usable = usableResume(decoded, t, files.fileCount);
  if (usable && !usable.ok) {
    resume = 'ignored';
    reason = usable.reason;
  } else if (usable?.ok) {
    resume = 'used';
    state = usable.state;
    journal = new Set(usable.journal);
    writtenNs = usable.writtenNs;
  }

  // Which files the journal says tdl wrote to after the checkpoint, and how far into each.
  const journaled = new Uint8Array(files.fileCount);
  const journaledEnd = new Float64Array(files.fileCount);
  for (const p of journal) {
    for (const s of layout.spans(p)) {
      journaled[s.fileIndex] = 1;
      journaledEnd[s.fileIndex] = Math.max(journaledEnd[s.fileIndex]!, s.fileOffset + s.length);
    }
  }
  /**
   * Whether a file's new time is tdl's own write after the checkpoint (the crash case): the
   * journal names a piece of it, and the time is not later than the journal's last write allows
   * (each write began once its entry was out). A later change is someone else's (a copy put over
   * the file after a crash).
   */
  const ownWrite = (i: number, now: FileStamp): boolean =>
    journaled[i] === 1 && writtenNs !== undefined && now.mtimeNs <= writtenNs + JOURNAL_SLACK_NS;

  /** The size of each trusted file: its recorded pieces must lie within it. */
  const trustedSize = new Float64Array(files.fileCount);
  const fileTrust: FileTrust[] = Array.from({ length: files.fileCount }, (_, i) => {
    if (!files.existed(i) || files.isPadding(i)) return 'new';
    const r = state ? stampAt(state.files, i) : null;
    const now = stampAt(stamps, i);
    if (!r || !now) return 'untrusted';
    // Not there when the checkpoint was taken (stamped all zeros): every byte in it since is a
    // journaled write.
    const absentThen = r.size === 0 && r.ino === 0n && r.mtimeNs === 0n;
    if (r.ino !== now.ino && !absentThen) return 'untrusted';
    if (r.size !== now.size) {
      // Grown by tdl's own writes since the checkpoint (pieces land out of order, so a sparse
      // file grows with each later one): the journal's pieces in it reach its new end. Its
      // recorded pieces lie within the size stamped; the journal's are hashed.
      if (now.size > r.size && now.size <= journaledEnd[i]! && ownWrite(i, now)) {
        trustedSize[i] = r.size;
        return 'trusted';
      }
      return 'untrusted';
    }
    trustedSize[i] = now.size;
    if (r.mtimeNs === now.mtimeNs || absentThen) return 'trusted';
    // Otherwise every piece of the file is hashed.
    return ownWrite(i, now) ? 'trusted' : 'untrusted';
  });

  const trusted = new Bitfield(layout.pieceCount);
  const toHash: number[] = [];
  for (let p = 0; p < layout.pieceCount; p++) {
    let allNew = true;
    let allTrusted = true;
    let someUntrusted = false;
    let inside = true;
    let allPadding = true;
    for (const s of layout.spans(p)) {
      // Padding is zeros by definition: it neither makes a piece present nor calls for a hash.
      // Files not selected are never on disk: their bytes come from the parts file (below).
      if (files.isPadding(s.fileIndex)) continue;
      allPadding = false;
      if (!files.isSelected(s.fileIndex)) continue;
      const ft = fileTrust[s.fileIndex]!;
      if (ft !== 'new') allNew = false;
      if (ft !== 'trusted') allTrusted = false;
      if (ft === 'untrusted') someUntrusted = true;
      // A trusted file is exactly as the checkpoint stamped it: a piece recorded past its end
      // (by a run that counted zeros past a file's end as present) is not on disk.
      else if (ft === 'trusted' && trustedSize[s.fileIndex]! < s.fileOffset + s.length) {
        inside = false;
      }
    }
    // A piece of padding only is zeros, never on disk: present when its hash is that of zeros, on
    // every run, without a read (as a file's piece is when its bytes are there).
    if (allPadding) {
      if (isZeroPiece(layout, t.pieceHashes, p)) trusted.set(p);
      continue;
    }
    if (allNew) continue;
    // A recorded piece named in the journal was written again after the checkpoint (a boundary
    // piece copied out of the parts file): its bytes may be torn, whatever the checkpoint says.
    if (state?.have.has(p) && allTrusted && inside && !journal.has(p)) trusted.set(p);
    else if (someUntrusted || journal.has(p)) toHash.push(p);
  }
  return { trusted, toHash, fileTrust, resume, reason, journal };
}

export interface StartupCheck {
  /** Pieces present on disk. */
  have: Bitfield;
  /** Pieces whose existing bytes are not a hole but failed verification. */
  mismatched: Bitfield;
  trustedPieces: number;
  hashedPieces: number;
  hashedBytes: number;
  resume: StartupPlan['resume'];
  reason?: string;
  ms: number;
}

/** The start-up check of a download whose storage is open for writing. */
export async function startupCheck(o: {
  storage: DiskStorage;
  layout: Layout;
  torrent: CheckTorrent;
  resumeFile: string;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}): Promise<StartupCheck> {
  const t0 = Date.now();
  const decoded = await readResumeFile(o.resumeFile, o.torrent, o.layout.fileCount);
  // The storage's own table (read at once, below): no object per file.
  const stamps = await o.storage.stampTable();
  const plan = planStartup(o.layout, o.storage, stamps, decoded, o.torrent);
  if (plan.resume === 'ignored') log('resume file %s ignored: %s', o.resumeFile, plan.reason);
  selectionPlan(o.layout, o.storage, plan);
  const hashed = await hashPieces({
    storage: o.storage,
    layout: o.layout,
    pieceHashes: o.torrent.pieceHashes,
    pieces: plan.toHash,
    onProgress: o.onProgress,
    signal: o.signal,
  });
  const have = new Bitfield(o.layout.pieceCount, plan.trusted.toBuffer());
  // Pieces found valid by hashing may sit in the page cache only (an earlier run crashed before
  // syncing them): their files are synced and stamped by the first checkpoint.
  const touched = new Set<number>();
  for (const p of plan.toHash) {
    if (!hashed.valid.has(p) || hashed.absent.has(p)) continue;
    have.set(p);
    for (const s of o.layout.spans(p)) touched.add(s.fileIndex);
  }
  o.storage.markDirty(touched);
  // A piece with a copy in the parts file that fails its hash as read (its selected files where
  // they hold its bytes, the copy elsewhere) may fail for its files' bytes alone: a file selected
  // again whose working copy, from an earlier and wider run, has a hole or older data there. The
  // copy alone, if right, makes the piece present, and is written over those bytes before
  // anything relies on them (piecesToCopy). A copy that fails too would be read (and served) as
  // the piece's bytes again, and kept by the piece's next write: forgotten, the fetched piece
  // replaces it.
  // Only where the copy can be written in place: a seed (read mode) writes nothing, and a piece
  // its files hold wrong is missing there, as verify calls it.
  const parts = o.storage.mode === 'write' ? o.storage.parts : null;
  for (const p of parts?.pieces ?? []) {
    if (hashed.valid.has(p) && !hashed.absent.has(p)) continue;
    if (await copyIsRight(o.storage, o.torrent.pieceHashes, p)) {
      have.set(p);
      hashed.nonZeroInvalid.clear(p);
      o.storage.useCopy(p);
    } else {
      parts!.forget(p);
    }
  }
  const ms = Date.now() - t0;
  log(
    'start-up check: %d/%d pieces present (%d from the resume file, %d of %d hashed valid, %d MiB read), resume file %s, %d ms',
    have.count,
    o.layout.pieceCount,
    plan.trusted.count,
    hashed.valid.count,
    hashed.hashedPieces,
    Math.round(hashed.hashedBytes / 1048576),
    plan.resume,
    ms,
  );
  // A piece the journal names that failed its hash holds tdl's own unfinished write (a run
  // stopped by a full disk, a crash mid-write), not someone else's data. One some of whose
  // bytes are not on disk (a file removed, or never made: a narrower selection before) is
  // missing, as `tdl verify` calls it, whatever the bytes beside the hole hold; so is one that
  // holds bytes of a file not selected, which may fail for those bytes, never written.
  for (const p of plan.journal) if (!have.has(p)) hashed.nonZeroInvalid.clear(p);
  for (const p of plan.toHash) {
    if (hashed.absent.has(p) || touchesUnselected(o.layout, o.storage, p)) {
      hashed.nonZeroInvalid.clear(p);
    }
  }
  return {
    have,
    mismatched: hashed.nonZeroInvalid,
    trustedPieces: plan.trusted.count,
    hashedPieces: hashed.hashedPieces,
    hashedBytes: hashed.hashedBytes,
    resume: plan.resume,
    reason: plan.reason,
    ms,
  };
}

/**
 * With the parts file of a selection: a piece that has bytes in a file not selected is present
 * only through its copy there, or through that file itself where it is on disk (an earlier,
 * wider download, complete or stopped, under its final or working name), so it is never
 * believed without a hash; and every piece with a copy is hashed (a few pieces: two per run of
 * selected files), since its copy may be all that holds some of its bytes (a file newly
 * selected).
 */
/** Whether the side file's copy of piece `p` is there whole and hashes right. */
export async function copyIsRight(
  storage: Pick<DiskStorage, 'readCopy'>,
  pieceHashes: Buffer,
  p: number,
): Promise<boolean> {
  const copy = await storage.readCopy(p);
  return copy !== null && createHash('sha1').update(copy).digest().equals(hashOf(pieceHashes, p));
}

/** Whether piece `p` holds bytes of a file not selected (padding aside), which tdl never writes. */
function touchesUnselected(
  layout: Layout,
  storage: Pick<DiskStorage, 'isSelected' | 'isPadding'>,
  p: number,
): boolean {
  return layout
    .spans(p)
    .some((s) => !storage.isSelected(s.fileIndex) && !storage.isPadding(s.fileIndex));
}

export function selectionPlan(
  layout: Layout,
  storage: Pick<DiskStorage, 'fileCount' | 'isSelected' | 'isPadding' | 'parts'>,
  plan: StartupPlan,
): void {
  const parts = storage.parts;
  let all = true;
  for (let i = 0; i < storage.fileCount && all; i++) all = storage.isSelected(i);
  if (!parts && all) return;
  const toHash = new Set(plan.toHash);
  for (let p = 0; p < layout.pieceCount; p++) {
    if (!plan.trusted.has(p)) continue;
    if (touchesUnselected(layout, storage, p) && !parts?.has(p)) {
      plan.trusted.clear(p);
      toHash.add(p);
    }
  }
  for (const p of parts?.pieces ?? []) {
    plan.trusted.clear(p);
    toHash.add(p);
  }
  plan.toHash = [...toHash].sort((a, b) => a - b);
}
