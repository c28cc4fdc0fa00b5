/**
 * Web seed (BEP 19) URLs and byte ranges: pure functions, no I/O.
 *
 * A piece of the torrent's concatenated stream maps to one HTTP range per file it touches.
 * The base URL comes from the torrent's `url-list` and is used as written (it is already a
 * URL); only the names we append are percent-encoded, component by component. Those names are
 * the bytes the torrent holds (its `name` and each file's `path`, or their valid `.utf-8`
 * variants, which tdl names files by when present), not the text tdl shows: a name that is not
 * UTF-8, or not in NFC form, is on the server as its creator's bytes.
 */
import { decodeStrict, isBytes, isDict, isList, type BValue } from '../metainfo/bencode.js';
import { percentEncodeBytes } from '../http.js';
import { componentFromBytes } from '../metainfo/paths.js';
import type { Layout } from '../storage/layout.js';
import type { TorrentFile } from '../metainfo/torrent.js';

/** What the URL mapping needs from the metainfo. */
export interface WebSeedMeta {
  name: string;
  multiFile: boolean;
  files: readonly Pick<TorrentFile, 'path' | 'padding'>[];
  /** The raw info dictionary: the names' bytes come from it when given. */
  info?: Buffer;
}

/** The bytes of a torrent's names, read from its info dictionary (views into it). */
interface RawNames {
  name: Uint8Array;
  /** Each file's `path` components; null for a single-file torrent. */
  paths: Uint8Array[][] | null;
}

const rawNamesOf = new WeakMap<Buffer, RawNames | null>();

/** A `.utf-8` name the parser takes (componentText): valid UTF-8, so not remapped. */
const isUtf8 = (b: Uint8Array): boolean => !componentFromBytes(b).remapped;

/** A file's path components: its valid `path.utf-8` (as tdl names it, then), else `path`. */
function pathBytes(plain: BValue | undefined, alt: BValue | undefined): Uint8Array[] {
  const p = isList(plain) ? plain.filter(isBytes) : [];
  if (!isList(alt) || alt.length !== p.length) return p;
  return p.map((c, i) => {
    const a = alt[i];
    return isBytes(a) && isUtf8(a) ? a : c;
  });
}

/**
 * The names' bytes in `info`, or null when it does not hold them in the v1 shape (then the
 * shown names are used). Decoded once per info dictionary.
 */
function rawNames(info: Buffer): RawNames | null {
  let r = rawNamesOf.get(info);
  if (r !== undefined) return r;
  r = null;
  try {
    const d = decodeStrict(info, { largeIntegers: true }).value;
    if (isDict(d) && isBytes(d['name'])) {
      const files = d['files'];
      let paths: Uint8Array[][] | null = null;
      if (isList(files)) {
        paths = files.map((f: BValue) => (isDict(f) ? pathBytes(f['path'], f['path.utf-8']) : []));
      }
      const alt = d['name.utf-8'];
      r = { name: isBytes(alt) && isUtf8(alt) ? alt : d['name'], paths };
    }
  } catch {
    r = null;
  }
  rawNamesOf.set(info, r);
  return r;
}

/** One HTTP range request: bytes [start, end) of file `fileIndex`, for piece bytes at `pieceOffset`. */
export interface FileRange {
  fileIndex: number;
  url: string;
  /** First byte inside the file. */
  start: number;
  /** One past the last byte inside the file (the `Range` header sends `end - 1`). */
  end: number;
  /** Where these bytes go inside the piece. */
  pieceOffset: number;
}

/** UTF-8 bytes of one path component; every byte outside RFC 3986 "unreserved" becomes %XX. */
export function encodeComponent(component: string): string {
  return percentEncodeBytes(Buffer.from(component, 'utf8'));
}

/**
 * The URL of one file on a web seed (BEP 19).
 *
 * - single-file torrent: `base` itself, or `base + name` when `base` ends with `/`;
 * - multi-file torrent: `base` + (`/` unless it ends with one) + name + `/` + the file's path
 *   components, each percent-encoded.
 *
 * "Ends with" and "+" apply to the base's path: a query (`?token=...`, as signed URLs carry)
 * stays at the end of the URL, after the names, and a fragment (`#...`), which a client never
 * sends, is dropped rather than left to swallow the names.
 *
 * `filePath` is the file's path inside the torrent (without the top folder); it is ignored for
 * a single-file torrent.
 */
export function fileUrl(
  base: string,
  meta: { name: string; multiFile: boolean; info?: Buffer },
  filePath: readonly string[],
  fileIndex?: number,
): string {
  const hash = base.indexOf('#');
  const noFragment = hash < 0 ? base : base.slice(0, hash);
  const q = noFragment.indexOf('?');
  const path = q < 0 ? noFragment : noFragment.slice(0, q);
  const query = q < 0 ? '' : noFragment.slice(q);
  const slash = path.endsWith('/');
  const raw = meta.info ? rawNames(meta.info) : null;
  const name = raw ? percentEncodeBytes(raw.name) : encodeComponent(meta.name);
  if (!meta.multiFile) return (slash ? path + name : path) + query;
  const rawPath = fileIndex === undefined ? undefined : raw?.paths?.[fileIndex];
  const parts =
    rawPath && rawPath.length === filePath.length
      ? rawPath.map((c) => percentEncodeBytes(c))
      : filePath.map((c) => encodeComponent(c));
  return path + (slash ? '' : '/') + [name, ...parts].join('/') + query;
}

/**
 * The HTTP ranges that make up bytes [begin, begin + length) of piece `index`, in piece order.
 * BEP 47 padding files and empty files get no range: their bytes are zeros, which the caller's
 * zero-filled piece buffer already holds.
 */
export function pieceRanges(
  base: string,
  meta: WebSeedMeta,
  layout: Layout,
  index: number,
  begin = 0,
  length = layout.pieceSize(index) - begin,
): FileRange[] {
  const out: FileRange[] = [];
  for (const s of layout.spans(index, begin, length)) {
    const file = meta.files[s.fileIndex];
    if (!file) throw new RangeError(`no file ${s.fileIndex} in the metainfo`);
    if (file.padding) continue;
    out.push({
      fileIndex: s.fileIndex,
      url: fileUrl(base, meta, file.path, s.fileIndex),
      start: s.fileOffset,
      end: s.fileOffset + s.length,
      pieceOffset: s.pieceOffset,
    });
  }
  return out;
}

/**
 * The HTTP ranges for the run of `count` consecutive whole pieces starting at `first`: the
 * ranges of each piece, with ranges of the same file that follow each other merged into one,
 * so that a run inside one file is a single request. `pieceOffset` is the position inside the
 * run (piece `first` starts at 0).
 */
export function runRanges(
  base: string,
  meta: WebSeedMeta,
  layout: Layout,
  first: number,
  count: number,
): FileRange[] {
  const out: FileRange[] = [];
  for (let p = first; p < first + count; p++) {
    const shift = (p - first) * layout.pieceLength;
    for (const r of pieceRanges(base, meta, layout, p)) {
      const prev = out[out.length - 1];
      if (prev && prev.fileIndex === r.fileIndex && prev.end === r.start) {
        prev.end = r.end;
        continue;
      }
      out.push({ ...r, pieceOffset: r.pieceOffset + shift });
    }
  }
  return out;
}
