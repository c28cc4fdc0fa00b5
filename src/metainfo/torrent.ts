/**
 * .torrent (metainfo) parsing and validation. Every rejection names the offending field.
 */
import { createHash } from 'node:crypto';
import { MetainfoError } from '../errors.js';
import {
  type BValue,
  type RawFileEntry,
  checkInt,
  decodeStrict,
  fileEntryReader,
  getBytes,
  getInt,
  getList,
  isBytes,
  isDict,
  isList,
  optInt,
  optText,
  tryText,
} from './bencode.js';
import {
  asciiNameKind,
  checkPathCollisions,
  checkPathComponent,
  checkRelativePath,
  type Field,
  componentFromBytes,
  isSafeComponent,
  MAX_PATH_DEPTH,
  normalizeComponent,
  PathHashes,
  safeAsciiComponent,
} from './paths.js';

/** Largest .torrent file accepted (the CLI checks the size before reading). */
export const MAX_TORRENT_FILE_BYTES = 64 * 1024 * 1024;
/** Largest piece length accepted (bounds the memory held by in-flight pieces). */
export const MAX_PIECE_LENGTH = 64 * 1024 * 1024;
/** Most files accepted in a multi-file torrent. */
export const MAX_FILES = 100_000;

const HASH_LENGTH = 20;

export interface TorrentFile {
  path: string[];
  length: number;
  /** Byte offset of this file in the torrent's concatenated data. */
  offset: number;
  /** BEP 47 padding (`attr` has `p`, or an old `_____padding_file_` name): known zeros, never created on disk. */
  padding?: boolean;
  /** BEP 47 `attr` has `x`: made executable once complete. */
  executable?: boolean;
  /** BEP 47 `attr` has `h`: nothing to do on Linux; shown by `tdl info`. */
  hidden?: boolean;
  /**
   * BEP 47 `attr` has `l`: a symbolic link (length 0, never written) whose target is this path,
   * relative to the torrent's top folder. Checked like a file path, so it stays inside it.
   */
  symlink?: string[];
}

export interface Metainfo {
  /** SHA-1 of the raw `info` bytes exactly as they appear in the file. */
  infoHash: Buffer;
  /** Those raw `info` bytes (served to peers that fetch the metadata, BEP 9). */
  info: Buffer;
  infoHashHex: string;
  /** NFC-normalised. */
  name: string;
  pieceLength: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 hashes. */
  pieceHashes: Buffer;
  /** Total bytes, padding files included (the byte space pieces are cut from). */
  length: number;
  multiFile: boolean;
  /** Single-file: [{ path: [name], length, offset: 0 }]; multi-file: paths without the top folder. */
  files: TorrentFile[];
  announce: string | undefined;
  /** BEP 12 tiers if `announce-list` is present and non-empty, else [[announce]], else []. */
  announceList: string[][];
  private: boolean;
  comment?: string;
  createdBy?: string;
  creationDate?: number;
  /** BEP 19 web seeds (`url-list`): http(s) URLs only. */
  urlList: string[];
  /** BEP 17 HTTP seeds (`httpseeds`): http(s) URLs only. */
  httpSeeds: string[];
  /** DHT contacts for trackerless torrents (BEP 5 `nodes`), at most MAX_NODES. */
  nodes: { host: string; port: number }[];
  /** BEP 52 hybrid torrent (v1 and v2 metadata): tdl uses the v1 part and the v1 info hash. */
  hybrid: boolean;
  /** Things accepted but worth telling the user (trailing bytes, remapped names, bad seeds). */
  warnings: string[];
}

/** At most this many warnings about names or URLs are kept; the rest are counted. */
const MAX_ITEM_WARNINGS = 20;
const PADDING_NAME_PREFIX = '_____padding_file_';
/** Size of FastEntries' table of folder names (a power of 2). */
const FOLDER_SLOTS = 4096;

class Warnings {
  readonly list: string[] = [];
  private dropped = 0;
  add(message: string): void {
    if (this.list.length < MAX_ITEM_WARNINGS) this.list.push(message);
    else this.dropped++;
  }
  /** Always kept (not subject to the cap). */
  addGeneral(message: string): void {
    this.list.unshift(message);
  }
  done(): string[] {
    if (this.dropped > 0) this.list.push(`${this.dropped} more warning(s) like the above`);
    return this.list;
  }
}

/**
 * Reads a path component. The `.utf-8` variant some tools add is used when present and valid
 * UTF-8; otherwise the plain field, mapped reversibly when it is not UTF-8 (see
 * componentFromBytes, with a warning). Then NFC-normalised and checked.
 */
function componentText(
  raw: BValue | undefined,
  alt: BValue | undefined,
  f: Field,
  warnings: Warnings,
): string {
  const field = (): string => (typeof f === 'string' ? f : f());
  if (raw === undefined) throw new MetainfoError(field(), 'missing');
  if (!isBytes(raw)) throw new MetainfoError(field(), 'must be a byte string');
  let text: string | undefined;
  if (isBytes(alt)) {
    const a = componentFromBytes(alt);
    if (!a.remapped) text = a.text;
  }
  if (text === undefined) {
    const r = componentFromBytes(raw);
    text = r.text;
    if (r.remapped) warnings.add(`${field()}: not valid UTF-8, named ${JSON.stringify(text)}`);
  }
  const normalized = normalizeComponent(text);
  checkPathComponent(normalized, f);
  return normalized;
}

function parseTrackerUrl(v: BValue | undefined): string | undefined {
  if (!isBytes(v)) return undefined;
  const text = tryText(v)?.trim();
  return text ? text : undefined;
}

function parseAnnounceList(v: BValue | undefined): string[][] {
  if (!isList(v)) return [];
  const tiers: string[][] = [];
  for (const tier of v) {
    if (!isList(tier)) continue;
    const urls: string[] = [];
    for (const u of tier) {
      const url = parseTrackerUrl(u);
      if (url !== undefined && !urls.includes(url)) urls.push(url);
    }
    if (urls.length > 0) tiers.push(urls);
  }
  return tiers;
}

/** DHT contacts kept from a torrent's `nodes` at most. */
export const MAX_NODES = 100;

/** `nodes`: a list of [host, port] pairs; anything malformed is skipped, never fatal. */
function parseNodes(v: BValue | undefined): { host: string; port: number }[] {
  if (!isList(v)) return [];
  const out: { host: string; port: number }[] = [];
  for (const item of v) {
    if (out.length >= MAX_NODES) break;
    if (!isList(item) || item.length !== 2) continue;
    const [h, p] = item;
    const host = isBytes(h) ? tryText(h) : undefined;
    if (!host || host.length > 253 || !/^[A-Za-z0-9.:-]+$/.test(host)) continue;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) continue;
    out.push({ host, port: p });
  }
  return out;
}

/** True for an absolute http: or https: URL with a host, written out with its `//`. */
export function isHttpUrl(text: string): boolean {
  // The URL parser forgives much (`http:host/x`, `http:\\host`); a seed list should not need it.
  if (!/^https?:\/\/[^/]/i.test(text)) return false;
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Web seed lists (BEP 19 `url-list`, BEP 17 `httpseeds`): one URL or a list of them. Entries
 * that are not http(s) URLs are dropped with a warning; duplicates are dropped.
 */
function parseWebSeeds(v: BValue | undefined, field: string, warnings: Warnings): string[] {
  if (v === undefined) return [];
  const items = isBytes(v) ? [v] : isList(v) ? v : undefined;
  if (items === undefined) {
    warnings.add(`${field}: ignored (must be a URL or a list of URLs)`);
    return [];
  }
  const out: string[] = [];
  items.forEach((item, i) => {
    const text = isBytes(item) ? tryText(item)?.trim() : undefined;
    // An empty string is how some tools write "no web seed".
    if (text === '') return;
    if (text === undefined || !isHttpUrl(text)) {
      const shown = text === undefined ? '' : ` ${JSON.stringify(text)}`;
      warnings.add(`${field}[${i}]:${shown} ignored (not an http or https URL)`);
      return;
    }
    if (!out.includes(text)) out.push(text);
  });
  return out;
}

/** The BEP 47 attributes of a file entry (or of a single-file info dictionary). */
function fileAttributes(
  d: { [key: string]: BValue },
  field: string,
): { padding: boolean; executable: boolean; hidden: boolean; symlink: boolean } {
  const attr = d['attr'];
  if (attr === undefined)
    return { padding: false, executable: false, hidden: false, symlink: false };
  if (!isBytes(attr)) throw new MetainfoError(`${field}.attr`, 'must be a byte string');
  // Unknown letters are ignored (BEP 47 leaves room for more).
  return {
    padding: attr.includes(0x70), // p
    executable: attr.includes(0x78), // x
    hidden: attr.includes(0x68), // h
    symlink: attr.includes(0x6c), // l
  };
}

/** `symlink path`: the link target's components, relative to the torrent's top folder. */
function symlinkTarget(d: { [key: string]: BValue }, field: string, warnings: Warnings): string[] {
  const f = `${field}.symlink path`;
  const raw = getList(d, 'symlink path', f);
  if (raw.length === 0) throw new MetainfoError(f, 'is empty');
  const target = raw.map((c, k) => componentText(c, undefined, `${f}[${k}]`, warnings));
  checkRelativePath(target, f);
  return target;
}

/**
 * BEP 52 `file tree` flattened in its canonical order (keys sorted by their bytes). A file is
 * a dictionary whose only key is the empty string.
 */
function v2Files(tree: BValue, field: string): { path: string[]; length: number }[] {
  const out: { path: string[]; length: number }[] = [];
  const walk = (node: BValue, prefix: string[], f: string): void => {
    if (!isDict(node)) throw new MetainfoError(f, 'must be a dictionary');
    const keys = Object.keys(node).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const key of keys) {
      const child = node[key]!;
      if (key === '') {
        if (prefix.length === 0) throw new MetainfoError(f, 'a file has no name');
        if (!isDict(child)) throw new MetainfoError(`${f}[""]`, 'must be a dictionary');
        const length = getInt(child, 'length', `${f}[""].length`, { min: 0 });
        out.push({ path: prefix, length });
      } else {
        if (out.length > MAX_FILES)
          throw new MetainfoError(field, `has more than ${MAX_FILES} files`);
        walk(child, [...prefix, normalizeComponent(key)], `${f}[${JSON.stringify(key)}]`);
      }
    }
  };
  walk(tree, [], field);
  return out;
}

/** Refuses a hybrid torrent whose v2 file tree does not describe the v1 files. */
function checkHybrid(tree: BValue, files: TorrentFile[], name: string, multiFile: boolean): void {
  const field = 'info.file tree';
  const v2 = v2Files(tree, field);
  const v1 = files
    .filter((f) => !f.padding)
    .map((f) => ({ path: multiFile ? f.path : [name], length: f.length }));
  const show = (f: { path: string[]; length: number } | undefined): string =>
    f === undefined ? 'nothing' : `${JSON.stringify(f.path.join('/'))} (${f.length} bytes)`;
  const n = Math.max(v1.length, v2.length);
  for (let i = 0; i < n; i++) {
    const a = v1[i];
    const b = v2[i];
    if (a && b && a.length === b.length && a.path.join('/') === b.path.join('/')) continue;
    throw new MetainfoError(
      field,
      `does not match the v1 file list: file ${i + 1} is ${show(a)} in v1 but ${show(b)} in v2`,
    );
  }
}

/** One entry of `info.files` (index `i`, starting at byte `offset` of the torrent's data). */
function parseFileEntry(
  entry: BValue,
  i: number,
  offset: number,
  warnings: Warnings,
  folders: Map<string, string>,
): TorrentFile {
  // Field names are built only for a message: a 100,000-file torrent would build 700,000.
  const field = `info.files[${i}]`;
  if (!isDict(entry)) throw new MetainfoError(field, 'must be a dictionary');
  const len = entry['length'];
  const length =
    typeof len === 'number' && len >= 0
      ? len
      : getInt(entry, 'length', `${field}.length`, { min: 0 });
  const p = entry['path'];
  const rawPath = isList(p) ? p : getList(entry, 'path', `${field}.path`);
  if (rawPath.length === 0) throw new MetainfoError(`${field}.path`, 'is empty');
  const alt = entry['path.utf-8'];
  const altPath = isList(alt) && alt.length === rawPath.length ? alt : undefined;
  const last = rawPath.length - 1;
  const path = rawPath.map((c, k) => {
    const text = componentText(c, altPath?.[k], () => `${field}.path[${k}]`, warnings);
    if (k === last) return text;
    // Folder names repeat from file to file: keep one copy of each.
    const seen = folders.get(text);
    if (seen !== undefined) return seen;
    folders.set(text, text);
    return text;
  });
  checkRelativePath(path, () => `${field}.path`);
  const file: TorrentFile = { path, length, offset };
  const attr = fileAttributes(entry, field);
  if (attr.padding || path[path.length - 1]!.startsWith(PADDING_NAME_PREFIX)) {
    file.padding = true;
  } else {
    if (attr.symlink) {
      if (length !== 0) {
        throw new MetainfoError(`${field}.length`, `is ${length}, but a symbolic link has no data`);
      }
      file.symlink = symlinkTarget(entry, field, warnings);
      if (file.symlink.join('/') === path.join('/')) {
        throw new MetainfoError(`${field}.symlink path`, 'a link cannot point at itself');
      }
    }
    if (attr.executable) file.executable = true;
    if (attr.hidden) file.hidden = true;
  }
  return file;
}

/**
 * Reads file entries that the decoder checked in place (RawFileEntry) straight from the
 * torrent's bytes: no dictionary, no Buffer per name. It handles the usual entry (a length, a
 * path whose names are valid UTF-8 and safe, maybe `path.utf-8` and `attr`, no symbolic link)
 * and returns undefined for anything else, which is then built and read by parseFileEntry:
 * its result, warnings and errors are the reference.
 */
class FastEntries {
  /**
   * Folder names already read, by where their bytes are: a small table indexed by a hash of
   * the bytes (a slot holds the last name that landed there), so a name seen before costs a
   * byte comparison and no new string.
   */
  private readonly slotStart = new Int32Array(FOLDER_SLOTS).fill(-1);
  private readonly slotEnd = new Int32Array(FOLDER_SLOTS);
  private readonly slotText: (string | undefined)[] = new Array<string | undefined>(FOLDER_SLOTS);

  constructor(
    private readonly buf: Buffer,
    private readonly folders: Map<string, string>,
  ) {}

  /** The checked, NFC-normalised text of the name at [start, end); undefined: not handled. */
  private name(start: number, end: number): string | undefined {
    const ascii = safeAsciiComponent(this.buf, start, end);
    if (ascii !== undefined) return ascii;
    const r = componentFromBytes(this.buf.subarray(start, end));
    if (r.remapped) return undefined;
    const text = normalizeComponent(r.text);
    return isSafeComponent(text) ? text : undefined;
  }

  /** Like name(), for the `path.utf-8` variant: null when it is not valid UTF-8 (then unused). */
  private altName(start: number, end: number): string | null | undefined {
    const ascii = safeAsciiComponent(this.buf, start, end);
    if (ascii !== undefined) return ascii;
    const r = componentFromBytes(this.buf.subarray(start, end));
    if (r.remapped) return null;
    const text = normalizeComponent(r.text);
    return isSafeComponent(text) ? text : undefined;
  }

  /** One copy of each folder name (shared with parseFileEntry's). */
  private shared(text: string): string {
    const seen = this.folders.get(text);
    if (seen !== undefined) return seen;
    this.folders.set(text, text);
    return text;
  }

  /** name() for a folder, through the table of names already read. */
  private folderName(start: number, end: number): string | undefined {
    const b = this.buf;
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    const slot = (h ^ (h >>> 15)) & (FOLDER_SLOTS - 1);
    const ps = this.slotStart[slot]!;
    if (ps >= 0 && this.slotEnd[slot]! - ps === end - start) {
      let same = true;
      for (let i = 0; same && i < end - start; i++) same = b[ps + i] === b[start + i];
      if (same) return this.slotText[slot];
    }
    const text = this.name(start, end);
    if (text === undefined) return undefined;
    const kept = this.shared(text);
    this.slotStart[slot] = start;
    this.slotEnd[slot] = end;
    this.slotText[slot] = kept;
    return kept;
  }

  /**
   * Checks entry `e` as read() would read it, without making its names (ASCII ones are hashed
   * from their bytes), and adds its path to `hashes` unless it is a padding file. Returns -1
   * when read() would not handle it, else 1 for a padding file and 0 for another.
   */
  check(e: RawFileEntry, hashes: PathHashes): number {
    const raw = e.path;
    const n = e.pathNames;
    if (!e.hasLength || e.length < 0 || n <= 0 || n > MAX_PATH_DEPTH) return -1;
    const alt = e.altNames === n ? e.altPath : null;
    const b = this.buf;
    let padding = false;
    hashes.begin();
    for (let k = 0; k < n; k++) {
      let start = raw[2 * k]!;
      let end = raw[2 * k + 1]!;
      let text: string | undefined;
      let kind: number = -1;
      if (alt !== null) {
        const as = alt[2 * k]!;
        const ae = alt[2 * k + 1]!;
        kind = asciiNameKind(b, as, ae);
        if (kind === 1) {
          start = as;
          end = ae;
        } else {
          const a = this.altName(as, ae);
          if (a === undefined) return abandon(hashes);
          if (a !== null) text = a;
          kind = -1;
        }
      }
      if (text === undefined && kind !== 1) {
        kind = asciiNameKind(b, start, end);
        if (kind === 0) return abandon(hashes);
        if (kind === 2) {
          text = this.name(start, end);
          if (text === undefined) return abandon(hashes);
        }
      }
      if (text === undefined) {
        hashes.ascii(b, start, end);
        if (k === n - 1) padding = bytesStartWith(b, start, end, PADDING_PREFIX_BYTES);
      } else {
        hashes.text(text);
        if (k === n - 1) padding = text.startsWith(PADDING_NAME_PREFIX);
      }
    }
    if (e.attrStart >= 0) {
      const attr = b.subarray(e.attrStart, e.attrEnd);
      padding ||= attr.includes(0x70); // p
      if (!padding && attr.includes(0x6c)) return abandon(hashes); // l: read the full way
    }
    // Padding files are never created (BEP 47), so they cannot collide with anything; some
    // creators give all of them the same name.
    if (padding) hashes.abandon();
    else hashes.end();
    return padding ? 1 : 0;
  }

  read(e: RawFileEntry, offset: number): TorrentFile | undefined {
    const raw = e.path;
    const n = e.pathNames;
    if (!e.hasLength || e.length < 0 || n <= 0 || n > MAX_PATH_DEPTH) return undefined;
    const alt = e.altNames === n ? e.altPath : null;
    // Made at its size (a pushed-to array reserves room for 17 names).
    const path = new Array<string>(n);
    for (let k = 0; k < n; k++) {
      const start = raw[2 * k]!;
      const end = raw[2 * k + 1]!;
      let text: string | undefined;
      if (alt !== null) {
        const a = this.altName(alt[2 * k]!, alt[2 * k + 1]!);
        if (a === undefined) return undefined;
        if (a !== null) text = k < n - 1 ? this.shared(a) : a;
      }
      // Folder names repeat from file to file: keep one copy of each.
      text ??= k < n - 1 ? this.folderName(start, end) : this.name(start, end);
      if (text === undefined) return undefined;
      path[k] = text;
    }
    const file: TorrentFile = { path, length: e.length, offset };
    let padding = path[n - 1]!.startsWith(PADDING_NAME_PREFIX);
    if (e.attrStart >= 0) {
      const attr = this.buf.subarray(e.attrStart, e.attrEnd);
      padding ||= attr.includes(0x70); // p
      if (!padding) {
        if (attr.includes(0x6c)) return undefined; // l: a symbolic link, read the full way
        if (attr.includes(0x78)) file.executable = true; // x
        if (attr.includes(0x68)) file.hidden = true; // h
      }
    }
    if (padding) file.padding = true;
    return file;
  }
}

function abandon(hashes: PathHashes): number {
  hashes.abandon();
  return -1;
}

const PADDING_PREFIX_BYTES = Buffer.from(PADDING_NAME_PREFIX);

function bytesStartWith(buf: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

/**
 * The file list of a multi-file torrent, kept as positions until asked for (see
 * docs/DESIGN.md, "Parsing large torrents"): where each entry is in the input, its offset and
 * whether it is padding, in typed arrays; a TorrentFile is made from the entry's bytes when
 * one is needed. Entries of an unusual shape are built at once and kept (`built`).
 */
class FileTable {
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

export interface ParseOptions {
  /**
   * Read every file entry the full way (decoded, then parseFileEntry) and build the file list
   * at once, as before FileTable: the reference the fast route is tested against.
   */
  fullRoute?: boolean;
}

/**
 * Parses and validates a .torrent. Throws BencodeError or MetainfoError. The result's byte
 * fields (`info`, `pieceHashes`) are views into `buf`, and the file list is read from it when
 * first asked for: keep `buf` unchanged while the result is in use.
 */
export function parseTorrent(buf: Uint8Array, opts: ParseOptions = {}): Metainfo {
  if (buf.length > MAX_TORRENT_FILE_BYTES) {
    throw new MetainfoError(
      'torrent',
      `file is ${buf.length} bytes, more than the ${MAX_TORRENT_FILE_BYTES} allowed`,
    );
  }
  const warnings = new Warnings();
  // Bytes after the top-level dictionary are ignored (libtorrent loads such files): the info
  // dictionary and its hash do not depend on them. Inside the value everything stays strict.
  // The file list is turned into TorrentFile entries as it is decoded, so a 100,000-file
  // torrent never holds both (see docs/DESIGN.md, "Large torrents").
  const folders = new Map<string, string>();
  let total = 0;
  const whole = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const fast = new FastEntries(whole, folders);
  const table = new FileTable(whole, fast);
  const hashes = new PathHashes();
  // An entry built the full way: kept, and its path hashed unless it is padding.
  const addBuilt = (file: TorrentFile): void => {
    table.built.set(table.count, file);
    if (!file.padding) {
      hashes.begin();
      for (const c of file.path) hashes.text(c);
      hashes.end();
    }
    addFile(-1, file.length, file.padding === true);
  };
  const onFile = (entry: BValue, i: number): void => {
    if (i >= MAX_FILES) {
      throw new MetainfoError('info.files', `has more than ${MAX_FILES} entries`);
    }
    addBuilt(parseFileEntry(entry, i, total, warnings, folders));
  };
  const onFileEntry = (e: RawFileEntry, i: number): void => {
    if (i >= MAX_FILES) {
      throw new MetainfoError('info.files', `has more than ${MAX_FILES} entries`);
    }
    const kind = fast.check(e, hashes);
    if (kind >= 0) {
      addFile(e.start, e.length, kind === 1);
      return;
    }
    // Not the usual shape: built and read the full way, which gives the same result, the
    // warnings and the errors.
    const entry = decodeStrict(whole.subarray(e.start, e.end)).value;
    addBuilt(parseFileEntry(entry, i, total, warnings, folders));
  };
  const addFile = (start: number, length: number, padding: boolean): void => {
    table.add(start, total, padding);
    total += length;
    if (total > Number.MAX_SAFE_INTEGER) {
      throw new MetainfoError('info.files', 'total length is too large');
    }
  };
  const {
    value: root,
    span,
    trailing,
  } = decodeStrict(buf, {
    spanOf: 'info',
    allowTrailing: true,
    streamList: {
      path: ['info', 'files'],
      onItem: onFile,
      ...(opts.fullRoute ? {} : { onFileEntry }),
    },
  });
  if (!isDict(root)) throw new MetainfoError('torrent', 'top level must be a dictionary');
  const info = root['info'];
  if (info === undefined || span === undefined) throw new MetainfoError('info', 'missing');
  if (!isDict(info)) throw new MetainfoError('info', 'must be a dictionary');

  let metaVersion = 1;
  if (info['meta version'] !== undefined) {
    metaVersion = checkInt(info['meta version'], 'info.meta version', { min: 1 });
  }
  if (info['pieces'] === undefined && (metaVersion >= 2 || info['file tree'] !== undefined)) {
    throw new MetainfoError('info', 'BitTorrent v2-only torrents are not supported yet');
  }
  const hybrid = metaVersion >= 2;
  if (hybrid && metaVersion !== 2) {
    throw new MetainfoError('info.meta version', `${metaVersion} is not supported`);
  }

  // A view, not a copy: pieceHashes is one too, so the input is kept whatever happens.
  const infoBytes = whole.subarray(span[0], span[1]);
  const infoHash = createHash('sha1').update(infoBytes).digest();

  const pieceLength = getInt(info, 'piece length', 'info.piece length', {
    min: 1,
    max: MAX_PIECE_LENGTH,
  });
  const pieceHashes = getBytes(info, 'pieces', 'info.pieces');
  if (pieceHashes.length % HASH_LENGTH !== 0) {
    throw new MetainfoError(
      'info.pieces',
      `length ${pieceHashes.length} is not a multiple of ${HASH_LENGTH}`,
    );
  }

  const name = componentText(info['name'], info['name.utf-8'], 'info.name', warnings);

  let priv = false;
  if (info['private'] !== undefined) {
    const p = checkInt(info['private'], 'info.private', { min: 0, max: 1 });
    priv = p === 1;
  }

  const hasLength = info['length'] !== undefined;
  const hasFiles = info['files'] !== undefined;
  if (hasLength && hasFiles) {
    throw new MetainfoError('info', 'has both "length" and "files"');
  }
  if (!hasLength && !hasFiles) {
    throw new MetainfoError('info', 'has neither "length" nor "files"');
  }

  let files: TorrentFile[] | undefined;
  if (hasLength) {
    const length = getInt(info, 'length', 'info.length', { min: 0 });
    const file: TorrentFile = { path: [name], length, offset: 0 };
    const attr = fileAttributes(info, 'info');
    if (attr.symlink) {
      throw new MetainfoError('info.attr', 'a single-file torrent cannot be a symbolic link');
    }
    if (attr.padding) warnings.add('info.attr: padding ignored on a single-file torrent');
    if (attr.executable) file.executable = true;
    if (attr.hidden) file.hidden = true;
    files = [file];
    total = length;
  } else {
    // Its entries were checked while decoding (onFile, onFileEntry): what is left is an empty
    // list.
    getList(info, 'files', 'info.files');
    if (table.count === 0) throw new MetainfoError('info.files', 'is empty');
    table.total = total;
    // Padding files are never created (BEP 47), so they cannot collide with anything; some
    // creators give all of them the same name. The hashes clear nearly every torrent; a
    // "maybe" is settled by the names themselves, which also make the message.
    if (hashes.maybeCollide()) {
      const real: string[][] = [];
      const index: number[] = [];
      table.all().forEach((f, i) => {
        if (f.padding) return;
        real.push(f.path);
        index.push(i);
      });
      checkPathCollisions(real, (k) => `info.files[${index[k]!}].path`);
    }
  }
  if (total <= 0) {
    throw new MetainfoError(hasLength ? 'info.length' : 'info.files', 'total length is 0');
  }

  const pieceCount = Math.ceil(total / pieceLength);
  if (pieceHashes.length !== pieceCount * HASH_LENGTH) {
    throw new MetainfoError(
      'info.pieces',
      `length ${pieceHashes.length} does not match ${pieceCount} pieces ` +
        `(${pieceCount * HASH_LENGTH} bytes expected for ${total} bytes in pieces of ${pieceLength})`,
    );
  }

  if (hybrid) {
    const tree = info['file tree'];
    if (tree === undefined) throw new MetainfoError('info.file tree', 'missing');
    const v2Name = tryText(isBytes(info['name']) ? info['name'] : undefined);
    checkHybrid(
      tree,
      files ?? table.all(),
      v2Name === undefined ? name : normalizeComponent(v2Name),
      hasFiles,
    );
  }

  const announce = parseTrackerUrl(root['announce']);
  const tiers = parseAnnounceList(root['announce-list']);
  const announceList = tiers.length > 0 ? tiers : announce !== undefined ? [[announce]] : [];

  const m: Metainfo = {
    infoHash,
    info: infoBytes,
    infoHashHex: infoHash.toString('hex'),
    name,
    pieceLength,
    pieceCount,
    pieceHashes,
    length: total,
    multiFile: hasFiles,
    files: files ?? [],
    announce,
    announceList,
    private: priv,
    urlList: parseWebSeeds(root['url-list'], 'url-list', warnings),
    nodes: parseNodes(root['nodes']),
    httpSeeds: parseWebSeeds(root['httpseeds'], 'httpseeds', warnings),
    hybrid,
    warnings: [],
  };
  const comment = optText(root, 'comment');
  if (comment !== undefined) m.comment = comment;
  const createdBy = optText(root, 'created by');
  if (createdBy !== undefined) m.createdBy = createdBy;
  const creationDate = optInt(root, 'creation date');
  if (creationDate !== undefined) m.creationDate = creationDate;
  if (trailing > 0) {
    warnings.addGeneral(
      `${trailing} byte(s) after the end of the torrent's top-level dictionary were ignored`,
    );
  }
  m.warnings = warnings.done();
  if (files === undefined && opts.fullRoute) {
    m.files = table.all();
  } else if (files === undefined) {
    // The list is made when first read (see FileTable), then kept.
    Object.defineProperty(m, 'files', {
      enumerable: true,
      configurable: true,
      get: () => table.all(),
      set: (list: TorrentFile[]) => {
        table.list = list;
      },
    });
    tables.set(m, table);
  }
  return m;
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

/** The 20-byte SHA-1 of piece `index` (a view into `m.pieceHashes`). */
export function pieceHash(m: Metainfo, index: number): Buffer {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) {
    throw new RangeError(`piece index ${index} out of range 0..${m.pieceCount - 1}`);
  }
  return m.pieceHashes.subarray(index * HASH_LENGTH, (index + 1) * HASH_LENGTH);
}
