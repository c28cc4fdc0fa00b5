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

/**
 * Where a torrent's names are in its info dictionary. Positions, not views: a 100,000-file
 * torrent has about a million path components, and a view of each took about 100 bytes.
 */
interface RawNames {
  name: Uint8Array;
  /** File i's `path` components are pairs `firstComponent[i]` to `firstComponent[i + 1]`. */
  firstComponent: Int32Array | null;
  /** [start, end) of each component in the info dictionary, one pair after the other. */
  components: Int32Array;
}

const rawNamesOf = new WeakMap<Buffer, RawNames | null>();

/** A `.utf-8` name the parser takes (componentText): valid UTF-8, so not remapped. */
const isUtf8 = (b: Uint8Array): boolean => !componentFromBytes(b).remapped;

/**
 * The names' bytes in `info`, or null when it does not hold them in the v1 shape (then the
 * shown names are used). Read once per info dictionary, its file list streamed (never built:
 * the torrent's own parse counted no value of it, see DecodeOptions.streamList).
 */
function rawNames(info: Buffer): RawNames | null {
  let r = rawNamesOf.get(info);
  if (r !== undefined) return r;
  r = null;
  const firsts: number[] = [];
  const comps: number[] = [];
  const at = (b: Uint8Array): number => b.byteOffset - info.byteOffset;
  // A file's components: its valid `path.utf-8` ones (as tdl names it, then), else `path`'s.
  const addPath = (plain: Uint8Array[], alt: readonly BValue[] | null): void => {
    firsts.push(comps.length >> 1);
    const useAlt = alt !== null && alt.length === plain.length;
    plain.forEach((c, k) => {
      const a = useAlt ? alt[k] : undefined;
      const chosen = a !== undefined && isBytes(a) && isUtf8(a) ? a : c;
      comps.push(at(chosen), at(chosen) + chosen.length);
    });
  };
  const spans = (pairs: Int32Array, n: number): Buffer[] =>
    Array.from({ length: Math.max(0, n) }, (_, k) => info.subarray(pairs[2 * k], pairs[2 * k + 1]));
  try {
    const d = decodeStrict(info, {
      largeIntegers: true,
      streamList: {
        path: ['files'],
        onItem: (f) => {
          const plain = isDict(f) ? f['path'] : undefined;
          const alt = isDict(f) ? f['path.utf-8'] : undefined;
          addPath(isList(plain) ? plain.filter(isBytes) : [], isList(alt) ? alt : null);
        },
        onFileEntry: (e) => {
          addPath(
            spans(e.path, e.pathNames),
            e.altNames >= 0 ? spans(e.altPath, e.altNames) : null,
          );
        },
      },
    }).value;
    if (isDict(d) && isBytes(d['name'])) {
      let firstComponent: Int32Array | null = null;
      if (isList(d['files'])) {
        firsts.push(comps.length >> 1);
        firstComponent = Int32Array.from(firsts);
      }
      const alt = d['name.utf-8'];
      r = {
        name: isBytes(alt) && isUtf8(alt) ? alt : d['name'],
        firstComponent,
        components: Int32Array.from(comps),
      };
    }
  } catch {
    r = null;
  }
  rawNamesOf.set(info, r);
  return r;
}

/** File `i`'s raw path components, or undefined when there is no such file. */
function rawPath(info: Buffer, raw: RawNames, i: number): Uint8Array[] | undefined {
  const f = raw.firstComponent;
  if (!f || i < 0 || i + 1 >= f.length) return undefined;
  const out: Uint8Array[] = [];
  for (let k = f[i]!; k < f[i + 1]!; k++) {
    out.push(info.subarray(raw.components[2 * k], raw.components[2 * k + 1]));
  }
  return out;
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
  const own =
    fileIndex === undefined || !raw || !meta.info ? undefined : rawPath(meta.info, raw, fileIndex);
  const parts =
    own && own.length === filePath.length
      ? own.map((c) => percentEncodeBytes(c))
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
