/**
 * BEP 52 hybrid torrents (v1 and v2 metadata): tdl downloads over v1, and refuses one whose v2
 * file tree does not describe the v1 file list (names, sizes, order, and where each file starts:
 * v2 starts every file with data at a piece boundary, so the v1 list must pad to the same
 * places), as libtorrent does.
 */
import { createHash } from 'node:crypto';
import { MetainfoError } from '../errors.js';
import { type BValue, getInt, isBytes, isDict } from './bencode.js';
import { normalizeComponent } from './paths.js';
import { MAX_FILES, type TorrentFile } from './types.js';

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
        // A symbolic link (BEP 47 `l`) holds no data: libtorrent writes it without a length.
        const attr = child['attr'];
        const link = isBytes(attr) && attr.includes(0x6c) && child['length'] === undefined;
        const length = link ? 0 : getInt(child, 'length', `${f}[""].length`, { min: 0 });
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
export function checkHybrid(
  tree: BValue,
  files: TorrentFile[],
  name: string,
  multiFile: boolean,
  pieceLength: number,
  total: number,
): void {
  const field = 'info.file tree';
  const v2 = v2Files(tree, field);
  const v1 = files
    .filter((f) => !f.padding)
    .map((f) => ({ path: multiFile ? f.path : [name], length: f.length, offset: f.offset }));
  const show = (f: { path: string[]; length: number } | undefined): string =>
    f === undefined ? 'nothing' : `${JSON.stringify(f.path.join('/'))} (${f.length} bytes)`;
  const n = Math.max(v1.length, v2.length);
  const alignUp = (x: number): number => Math.ceil(x / pieceLength) * pieceLength;
  // Where the v2 layout puts the next file: each file with data starts a piece.
  let end = 0;
  for (let i = 0; i < n; i++) {
    const a = v1[i];
    const b = v2[i];
    if (!(a && b && a.length === b.length && a.path.join('/') === b.path.join('/'))) {
      throw new MetainfoError(
        field,
        `does not match the v1 file list: file ${i + 1} is ${show(a)} in v1 but ${show(b)} in v2`,
      );
    }
    if (a.length === 0) continue;
    const start = alignUp(end);
    if (a.offset !== start) {
      throw new MetainfoError(
        field,
        `does not match the v1 file list: file ${i + 1} (${JSON.stringify(a.path.join('/'))}) ` +
          `starts at byte ${a.offset} in v1 but at ${start} in v2 (the v1 padding files are wrong)`,
      );
    }
    end = start + a.length;
  }
  // Padding after the last file may reach the next piece boundary, no further.
  if (total > alignUp(end)) {
    throw new MetainfoError(
      field,
      `does not match the v1 file list: the v1 data is ${total} bytes, but the v2 files end ` +
        `at byte ${end} (the v1 padding files are wrong)`,
    );
  }
}

/**
 * The v2 info hash (BEP 52: SHA-256 of the bencoded info dictionary), as 64 hex digits: what
 * v2 clients and `urn:btmh:1220…` magnet links name a hybrid torrent by.
 */
export function infoHashV2Hex(info: Uint8Array): string {
  return createHash('sha256').update(info).digest('hex');
}
