/**
 * The file list of a parsed multi-file torrent, kept as positions in its bytes until asked for,
 * and the accessors that read a torrent's files without making its whole list (fileCount,
 * fileAt, fileList, fileOffsets, contentLength...): a 100,000-file torrent is walked without
 * holding 100,000 objects. For any other torrent they read `m.files`.
 */
import { fileEntryReader } from './bencode.js';
import type { FastEntries } from './file-entries.js';
import type { Metainfo, TorrentFile } from './types.js';

/**
 * The file list of a multi-file torrent, kept as positions until asked for (see
 * docs/DESIGN.md, "Parsing large torrents"): where each entry is in the input, its offset and
 * whether it is padding, in typed arrays; a TorrentFile is made from the entry's bytes when
 * one is needed. Entries of an unusual shape are built at once and kept (`built`).
 */
export class FileTable {
  count = 0;
  starts = new Int32Array(256);
  offsets = new Float64Array(256);
  padding = new Uint8Array(256);
  readonly built = new Map<number, TorrentFile>();
  /** Once `files` was read: the array handed out (kept and used from then on). */
  list: TorrentFile[] | undefined;
  private readonly reread = fileEntryReader();

  constructor(
    private readonly buf: Buffer,
    private readonly fast: FastEntries,
    public total = 0,
  ) {}

  /** Adds file `count`: its entry's start (-1 when it is in `built`), offset, padding. */
  add(start: number, offset: number, padding: boolean): void {
    const i = this.count++;
    if (i === this.starts.length) {
      const n = 2 * i;
      const starts = new Int32Array(n);
      starts.set(this.starts);
      this.starts = starts;
      const offsets = new Float64Array(n);
      offsets.set(this.offsets);
      this.offsets = offsets;
      const pad = new Uint8Array(n);
      pad.set(this.padding);
      this.padding = pad;
    }
    this.starts[i] = start;
    this.offsets[i] = offset;
    this.padding[i] = padding ? 1 : 0;
  }

  /** File `i`, made anew (kept by nobody) unless it was built at once. */
  make(i: number): TorrentFile {
    const built = this.built.get(i);
    if (built !== undefined) return built;
    const e = this.reread(this.buf, this.starts[i]!);
    // A whole number read from a Float64Array may come as a boxed double, and every object that
    // copies it (an output plan's file, storage's) then boxes its own: a small integer stays one.
    const at = this.offsets[i]!;
    const offset = at < 2 ** 31 ? at | 0 : at;
    const file = e === undefined ? undefined : this.fast.read(e, offset);
    // check() accepted this entry, so read() does too.
    if (file === undefined) throw new Error(`info.files[${i}] cannot be read again`);
    return file;
  }

  all(): TorrentFile[] {
    if (this.list === undefined) {
      const list = new Array<TorrentFile>(this.count);
      for (let i = 0; i < this.count; i++) list[i] = this.make(i);
      this.list = list;
    }
    return this.list;
  }
}

const tables = new WeakMap<Metainfo, FileTable>();

/** `m`'s file list is `t` until `m.files` is read (see parseTorrent). */
export function keepFileTable(m: Metainfo, t: FileTable): void {
  tables.set(m, t);
}

/** How many files `m` has (padding files included), without making its file list. */
export function fileCount(m: Metainfo): number {
  const t = tables.get(m);
  return t !== undefined && t.list === undefined ? t.count : m.files.length;
}

/**
 * File `i` of `m` (as `m.files[i]`). Until `m.files` is read, each call makes a new object
 * that nobody else keeps: listing a 100,000-file torrent this way never holds its whole list.
 */
export function fileAt(m: Metainfo, i: number): TorrentFile {
  const t = tables.get(m);
  if (t === undefined || t.list !== undefined) return m.files[i]!;
  if (!Number.isInteger(i) || i < 0 || i >= t.count) {
    throw new RangeError(`file index ${i} out of range 0..${t.count - 1}`);
  }
  return t.make(i);
}

/** Whether file `i` of `m` is a padding file, without making it. */
export function isPaddingFile(m: Metainfo, i: number): boolean {
  const t = tables.get(m);
  if (t === undefined || t.list !== undefined) return m.files[i]!.padding === true;
  return t.padding[i] === 1;
}

/** How many of `m`'s files are BEP 47 padding, without making its file list. */
export function paddingFileCount(m: Metainfo): number {
  let n = 0;
  const count = fileCount(m);
  for (let i = 0; i < count; i++) if (isPaddingFile(m, i)) n++;
  return n;
}

/**
 * The files of a torrent as a read-only list: `length` and `at(i)` (an array is one too). For a
 * parsed multi-file torrent whose `files` was never read (see FileTable), each `at(i)` makes the
 * entry anew and nobody keeps it, so walking a 100,000-file torrent never holds its whole list.
 */
export interface FileList<T = TorrentFile> {
  readonly length: number;
  at(index: number): T | undefined;
}

/** The files of `m` as a FileList, without making its file list (see fileAt). */
export function fileList(m: Metainfo): FileList {
  const t = tables.get(m);
  if (t === undefined || t.list !== undefined) return m.files;
  return {
    length: t.count,
    at: (i) => (Number.isInteger(i) && i >= 0 && i < t.count ? t.make(i) : undefined),
  };
}

/**
 * Where each file of `m` starts in the torrent's data, in a new array of fileCount(m) + 1
 * entries (the last is the total length), without making its file list.
 */
export function fileOffsets(m: Metainfo): Float64Array {
  const t = tables.get(m);
  if (t !== undefined && t.list === undefined) {
    const out = new Float64Array(t.count + 1);
    out.set(t.offsets.subarray(0, t.count));
    out[t.count] = t.total;
    return out;
  }
  const files = m.files;
  const out = new Float64Array(files.length + 1);
  for (let i = 0; i < files.length; i++) out[i] = files[i]!.offset;
  out[files.length] = m.length;
  return out;
}

/** Bytes of the real files: the total without padding files. */
export function contentLength(m: Metainfo): number {
  const t = tables.get(m);
  if (t !== undefined && t.list === undefined) {
    let real = 0;
    for (let i = 0; i < t.count; i++) {
      const end = i + 1 < t.count ? t.offsets[i + 1]! : t.total;
      if (t.padding[i] === 0) real += end - t.offsets[i]!;
    }
    return real;
  }
  let n = 0;
  for (const f of m.files) if (!f.padding) n += f.length;
  return n;
}
