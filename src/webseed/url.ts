/**
 * Web seed (BEP 19) URLs and byte ranges: pure functions, no I/O.
 *
 * A piece of the torrent's concatenated stream maps to one HTTP range per file it touches.
 * The base URL comes from the torrent's `url-list` and is used as written (it is already a
 * URL); only the names we append are percent-encoded, component by component.
 */
import { percentEncodeBytes } from '../http.js';
import type { Layout } from '../storage/layout.js';
import type { TorrentFile } from '../metainfo/torrent.js';

/** What the URL mapping needs from the metainfo. */
export interface WebSeedMeta {
  name: string;
  multiFile: boolean;
  files: readonly Pick<TorrentFile, 'path' | 'padding'>[];
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
 * `filePath` is the file's path inside the torrent (without the top folder); it is ignored for
 * a single-file torrent.
 */
export function fileUrl(
  base: string,
  meta: { name: string; multiFile: boolean },
  filePath: readonly string[],
): string {
  const slash = base.endsWith('/');
  if (!meta.multiFile) return slash ? base + encodeComponent(meta.name) : base;
  return (
    base + (slash ? '' : '/') + [meta.name, ...filePath].map((c) => encodeComponent(c)).join('/')
  );
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
      url: fileUrl(base, meta, file.path),
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
