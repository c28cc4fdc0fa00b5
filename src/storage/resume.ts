/**
 * The resume file codec.
 *
 * A resume file is a checkpoint followed by a journal:
 *
 *   offset  size  field
 *   0       8     magic "TDLRESUM"
 *   8       2     format version (1), big-endian like every number here
 *   10      2     flags: none defined; written as 0 and ignored when read (an older tdl set
 *                 bit 0 at an orderly exit, which nothing used)
 *   12      20    info hash
 *   32      8     piece length
 *   40      8     total length
 *   48      4     piece count
 *   52      4     file count (F)
 *   56      24*F  per file, in torrent order: size, mtime (ns since the epoch), inode (u64 each)
 *   ...     ⌈pieces/8⌉  bitfield of the pieces verified, written and synced when the
 *                       checkpoint was taken (piece 0 = high bit of the first byte)
 *   ...     20    SHA-1 of every byte above
 *   ...     4*n   journal: the index (u32) of each piece tdl started to write after the
 *                 checkpoint, appended before the write
 *
 * The checkpoint is only ever replaced whole (temp file, fsync, rename) and is rejected as a
 * whole when anything in it is off. Journal entries are hints, never trusted: a piece named
 * there is re-hashed at the next start, so a torn or stray entry costs at most one piece read.
 */
import { createHash } from 'node:crypto';
import { Bitfield } from '../wire/bitfield.js';

export const RESUME_MAGIC = Buffer.from('TDLRESUM', 'latin1');
export const RESUME_VERSION = 1;
export const RESUME_HEADER_BYTES = 56;
export const RESUME_FILE_ENTRY_BYTES = 24;
export const RESUME_CHECKSUM_BYTES = 20;
export const JOURNAL_ENTRY_BYTES = 4;

export interface ResumeFileEntry {
  size: number;
  mtimeNs: bigint;
  ino: bigint;
}

/**
 * Each file's stamp, kept as the resume file stores it (24 bytes a file, big-endian size, mtime
 * in ns, inode), so that 100,000 files cost one buffer rather than 100,000 objects, and a
 * checkpoint copies them in one go. A file without a stamp is all zeros.
 */
export class StampTable {
  readonly bytes: Buffer;
  private readonly known: Uint8Array;

  constructor(readonly length: number) {
    this.bytes = Buffer.alloc(RESUME_FILE_ENTRY_BYTES * length);
    this.known = new Uint8Array(length);
  }

  /** The stamps of a resume file (`bytes`: its 24-byte entries, copied): every one is known. */
  static fromBytes(bytes: Uint8Array, length: number): StampTable {
    if (bytes.length !== RESUME_FILE_ENTRY_BYTES * length) {
      throw new RangeError(`${bytes.length} bytes do not hold ${length} stamps`);
    }
    const t = new StampTable(length);
    t.bytes.set(bytes);
    t.known.fill(1);
    return t;
  }

  set(i: number, size: number, mtimeNs: bigint, ino: bigint): void {
    const off = i * RESUME_FILE_ENTRY_BYTES;
    this.bytes.writeBigUInt64BE(BigInt(size), off);
    this.bytes.writeBigUInt64BE(clampU64(mtimeNs), off + 8);
    this.bytes.writeBigUInt64BE(clampU64(ino), off + 16);
    this.known[i] = 1;
  }

  /** Size in the stamp of file `i` (0 without one). */
  size(i: number): number {
    return Number(this.bytes.readBigUInt64BE(i * RESUME_FILE_ENTRY_BYTES));
  }

  get(i: number): ResumeFileEntry | null {
    if (!this.known[i]) return null;
    const off = i * RESUME_FILE_ENTRY_BYTES;
    return {
      size: Number(this.bytes.readBigUInt64BE(off)),
      mtimeNs: this.bytes.readBigUInt64BE(off + 8),
      ino: this.bytes.readBigUInt64BE(off + 16),
    };
  }
}

export interface ResumeState {
  infoHash: Buffer;
  pieceLength: number;
  totalLength: number;
  pieceCount: number;
  /** A decoded resume file's are a StampTable: one buffer, whatever the number of files. */
  files: readonly ResumeFileEntry[] | StampTable;
  /** Pieces verified, written and synced when the checkpoint was taken. */
  have: Bitfield;
}

export type DecodedResume =
  | {
      ok: true;
      state: ResumeState;
      journal: number[];
      checkpointBytes: number;
      /**
       * When the resume file was last written (its mtime, ns), where known: each of tdl's writes
       * since the checkpoint began after its journal entry went out (see planStartup).
       */
      writtenNs?: bigint;
    }
  | { ok: false; reason: string };

/** Bytes of the checkpoint part for a torrent of this shape. */
export function checkpointSize(pieceCount: number, fileCount: number): number {
  return (
    RESUME_HEADER_BYTES +
    RESUME_FILE_ENTRY_BYTES * fileCount +
    Math.ceil(pieceCount / 8) +
    RESUME_CHECKSUM_BYTES
  );
}

const U64_MAX = (1n << 64n) - 1n;

/** The checkpoint, followed by `journal` entries. */
export function encodeResume(
  s: Omit<ResumeState, 'files'> & { files: readonly ResumeFileEntry[] | StampTable },
  journal: readonly number[] = [],
): Buffer {
  if (s.infoHash.length !== 20) throw new RangeError('info hash must be 20 bytes');
  if (s.have.size !== s.pieceCount) throw new RangeError('bitfield size must equal piece count');
  const size = checkpointSize(s.pieceCount, s.files.length);
  const buf = Buffer.alloc(size + JOURNAL_ENTRY_BYTES * journal.length);
  RESUME_MAGIC.copy(buf, 0);
  buf.writeUInt16BE(RESUME_VERSION, 8);
  buf.writeUInt16BE(0, 10);
  s.infoHash.copy(buf, 12);
  buf.writeBigUInt64BE(BigInt(s.pieceLength), 32);
  buf.writeBigUInt64BE(BigInt(s.totalLength), 40);
  buf.writeUInt32BE(s.pieceCount, 48);
  buf.writeUInt32BE(s.files.length, 52);
  let off = RESUME_HEADER_BYTES;
  if (s.files instanceof StampTable) {
    off += s.files.bytes.copy(buf, off);
  } else {
    for (const f of s.files) {
      buf.writeBigUInt64BE(BigInt(f.size), off);
      buf.writeBigUInt64BE(clampU64(f.mtimeNs), off + 8);
      buf.writeBigUInt64BE(clampU64(f.ino), off + 16);
      off += RESUME_FILE_ENTRY_BYTES;
    }
  }
  s.have.toBuffer().copy(buf, off);
  off += Math.ceil(s.pieceCount / 8);
  createHash('sha1').update(buf.subarray(0, off)).digest().copy(buf, off);
  off += RESUME_CHECKSUM_BYTES;
  for (const index of journal) {
    buf.writeUInt32BE(index, off);
    off += JOURNAL_ENTRY_BYTES;
  }
  return buf;
}

/** One journal entry. */
export function encodeJournalEntry(index: number): Buffer {
  const b = Buffer.alloc(JOURNAL_ENTRY_BYTES);
  b.writeUInt32BE(index);
  return b;
}

/** Decode a whole resume file. Never throws: anything malformed gives `{ ok: false, reason }`. */
export function decodeResume(buf: Buffer): DecodedResume {
  if (buf.length < RESUME_HEADER_BYTES) return bad(`too short (${buf.length} bytes)`);
  if (!buf.subarray(0, 8).equals(RESUME_MAGIC)) return bad('not a resume file');
  const version = buf.readUInt16BE(8);
  if (version !== RESUME_VERSION) return bad(`format version ${version} is not supported`);
  const infoHash = Buffer.from(buf.subarray(12, 32));
  const pieceLength = safeNumber(buf.readBigUInt64BE(32));
  const totalLength = safeNumber(buf.readBigUInt64BE(40));
  const pieceCount = buf.readUInt32BE(48);
  const fileCount = buf.readUInt32BE(52);
  if (pieceLength === null || pieceLength <= 0) return bad('bad piece length');
  if (totalLength === null) return bad('bad total length');
  if (pieceCount !== Math.ceil(totalLength / pieceLength)) return bad('piece count does not fit');
  const size = checkpointSize(pieceCount, fileCount);
  if (buf.length < size) return bad(`truncated (${buf.length} of ${size} bytes)`);
  const sumAt = size - RESUME_CHECKSUM_BYTES;
  const sum = createHash('sha1').update(buf.subarray(0, sumAt)).digest();
  if (!sum.equals(buf.subarray(sumAt, size))) return bad('checksum mismatch');

  // Kept as they are stored, in one buffer: no object per file.
  let off = RESUME_HEADER_BYTES;
  for (let i = 0; i < fileCount; i++) {
    // A size is at most 2^53 - 1: its top 11 bits are zero.
    if (buf.readUInt32BE(off) > 0x1fffff) return bad(`bad size for file ${i}`);
    off += RESUME_FILE_ENTRY_BYTES;
  }
  const files = StampTable.fromBytes(buf.subarray(RESUME_HEADER_BYTES, off), fileCount);
  const bfBytes = buf.subarray(off, off + Math.ceil(pieceCount / 8));
  const spare = bfBytes.length * 8 - pieceCount;
  if (spare > 0 && (bfBytes[bfBytes.length - 1]! & ((1 << spare) - 1)) !== 0) {
    return bad('bitfield has bits set past the last piece');
  }
  const have = new Bitfield(pieceCount, bfBytes);

  const journal: number[] = [];
  const seen = new Set<number>();
  for (let j = size; j + JOURNAL_ENTRY_BYTES <= buf.length; j += JOURNAL_ENTRY_BYTES) {
    const index = buf.readUInt32BE(j);
    if (index < pieceCount && !seen.has(index)) {
      seen.add(index);
      journal.push(index);
    }
  }
  return {
    ok: true,
    state: {
      infoHash,
      pieceLength,
      totalLength,
      pieceCount,
      files,
      have,
    },
    journal,
    checkpointBytes: size,
  };
}

/** The stamp of file `i` in a list or a StampTable (null: none). */
export function stampAt(
  list: readonly (ResumeFileEntry | null | undefined)[] | StampTable,
  i: number,
): ResumeFileEntry | null {
  return list instanceof StampTable ? list.get(i) : (list[i] ?? null);
}

/** Why a decoded resume file does not describe this torrent, or null when it does. */
export function resumeMismatch(
  s: ResumeState,
  t: { infoHash: Buffer; pieceLength: number; length: number; pieceCount: number; files: number },
): string | null {
  if (!s.infoHash.equals(t.infoHash)) return 'written for another torrent';
  if (s.pieceLength !== t.pieceLength || s.totalLength !== t.length) return 'torrent shape differs';
  if (s.pieceCount !== t.pieceCount || s.files.length !== t.files) return 'torrent shape differs';
  return null;
}

function bad(reason: string): DecodedResume {
  return { ok: false, reason };
}

function safeNumber(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

function clampU64(v: bigint): bigint {
  return v < 0n ? 0n : v > U64_MAX ? U64_MAX : v;
}
