/**
 * The file entries of a torrent: names (with their `.utf-8` variants and the reversible mapping
 * of names that are not UTF-8), BEP 47 attributes and symbolic links, read either the full way
 * (parseFileEntry, from a decoded dictionary: the reference) or straight from the torrent's
 * bytes for the usual shape of entry (FastEntries, see docs/DESIGN.md "Parsing large torrents").
 */
import { MetainfoError } from '../errors.js';
import {
  type BValue,
  type RawFileEntry,
  getInt,
  getList,
  isBytes,
  isDict,
  isList,
} from './bencode.js';
import {
  asciiNameKind,
  checkPathComponent,
  checkRelativePath,
  type Field,
  componentFromBytes,
  isSafeComponent,
  MAX_PATH_DEPTH,
  normalizeComponent,
  PathHashes,
  quoted,
  safeAsciiComponent,
} from './paths.js';
import type { TorrentFile } from './types.js';
import type { Warnings } from './warnings.js';

const PADDING_NAME_PREFIX = '_____padding_file_';
/** Size of FastEntries' table of folder names (a power of 2). */
const FOLDER_SLOTS = 4096;

/**
 * Reads a path component. The `.utf-8` variant some tools add is used when present and valid
 * UTF-8; otherwise the plain field, mapped reversibly when it is not UTF-8 (see
 * componentFromBytes, with a warning). Then NFC-normalised and checked.
 */
export function componentText(
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
    if (r.remapped) warnings.add(`${field()}: not valid UTF-8, named ${quoted(text)}`);
  }
  const normalized = normalizeComponent(text);
  checkPathComponent(normalized, f);
  return normalized;
}

/** The BEP 47 attributes of a file entry (or of a single-file info dictionary). */
export function fileAttributes(
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
function symlinkTarget(
  d: { [key: string]: BValue },
  field: string,
  warnings: Warnings,
  link: readonly string[],
): string[] {
  const f = `${field}.symlink path`;
  const raw = getList(d, 'symlink path', f);
  if (raw.length === 0) throw new MetainfoError(f, 'is empty');
  // libtorrent 2.0 writes a link's target relative to the link's own folder (`../x` for a link
  // in a subfolder): say what the link is and why it is refused, not just which name is bad.
  if (raw.some((c) => isBytes(c) && c.length === 2 && c[0] === 0x2e && c[1] === 0x2e)) {
    const shown = raw.map((c) => (isBytes(c) ? Buffer.from(c).toString('utf8') : '?')).join('/');
    throw new MetainfoError(
      f,
      `the symbolic link ${quoted(link.join('/'))} points to ${quoted(shown)}: ` +
        `a link's target is a path inside the torrent's folder (BEP 47), without "..", and ` +
        `tdl makes no link that could lead out of it`,
    );
  }
  const target = raw.map((c, k) => componentText(c, undefined, `${f}[${k}]`, warnings));
  checkRelativePath(target, f);
  return target;
}

/** One entry of `info.files` (index `i`, starting at byte `offset` of the torrent's data). */
export function parseFileEntry(
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
      file.symlink = symlinkTarget(entry, field, warnings, path);
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
export class FastEntries {
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
    return this.altName(start, end) ?? undefined;
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
