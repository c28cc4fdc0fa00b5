/**
 * BEP 52 hybrid torrents (v1 and v2 metadata): tdl downloads over v1, and refuses one whose v2
 * file tree does not describe the v1 file list (names, sizes, order), as libtorrent does.
 */
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
): void {
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
