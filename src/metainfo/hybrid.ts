/**
 * BEP 52 hybrid torrents (v1 and v2 metadata): tdl downloads over v1, and refuses one whose v2
 * file tree does not describe the v1 file list (names, sizes, order, and where each file starts:
 * v2 starts every file with data at a piece boundary, so the v1 list must pad to the same
 * places), as libtorrent does.
 */
import { createHash } from 'node:crypto';
import { MetainfoError } from '../errors.js';
import { componentFromBytes, normalizeComponent, quoted } from './paths.js';
import { MAX_FILES, type TorrentFile } from './types.js';

/**
 * Positions in bencoded input the strict decoder has already accepted. The `file tree` is read
 * here rather than from the decoded dictionaries, whose keys are text (a key that is not UTF-8
 * becomes hex, a leading byte order mark is dropped): its names are compared with the v1 names
 * from their bytes, mapped the same way (componentFromBytes).
 */
class Raw {
  constructor(private readonly b: Buffer) {}

  private fail(): never {
    throw new MetainfoError('info.file tree', 'is not valid bencode');
  }

  /** The byte string at `i`: its bytes and where it ends. */
  str(i: number): { bytes: Buffer; end: number } {
    const { b } = this;
    let j = i;
    let n = 0;
    while (j < b.length && b[j]! >= 0x30 && b[j]! <= 0x39) {
      n = n * 10 + (b[j]! - 0x30);
      if (n > b.length) this.fail();
      j++;
    }
    if (j === i || b[j] !== 0x3a || j + 1 + n > b.length) this.fail();
    return { bytes: b.subarray(j + 1, j + 1 + n), end: j + 1 + n };
  }

  /** The integer at `i` (`i…e`): its value, when a safe integer, and where it ends. */
  int(i: number): { value: number | undefined; end: number } {
    const e = this.b.indexOf(0x65, i + 1);
    if (this.b[i] !== 0x69 || e < 0) this.fail();
    const value = Number(this.b.toString('latin1', i + 1, e));
    return { value: Number.isSafeInteger(value) ? value : undefined, end: e + 1 };
  }

  /** Where the value at `i` ends. */
  skip(i: number): number {
    const c = this.b[i];
    if (c === 0x69) return this.int(i).end;
    if (c === 0x6c || c === 0x64) {
      let j = i + 1;
      while (j < this.b.length && this.b[j] !== 0x65) {
        if (c === 0x64) j = this.str(j).end;
        j = this.skip(j);
      }
      if (j >= this.b.length) this.fail();
      return j + 1;
    }
    return this.str(i).end;
  }

  /** The entries of the dictionary at `i`: raw key, and where its value starts. */
  entries(i: number): { key: Buffer; at: number }[] {
    if (this.b[i] !== 0x64) this.fail();
    const out: { key: Buffer; at: number }[] = [];
    let j = i + 1;
    while (j < this.b.length && this.b[j] !== 0x65) {
      const k = this.str(j);
      out.push({ key: k.bytes, at: k.end });
      j = this.skip(k.end);
    }
    return out;
  }

  isDict(i: number): boolean {
    return this.b[i] === 0x64;
  }
}

/**
 * BEP 52 `file tree` of the raw info dictionary `info`, flattened in its canonical order (keys
 * sorted by their bytes), each name mapped as a v1 name is. A file is a dictionary whose only
 * key is the empty string.
 */
function v2Files(info: Buffer, field: string): { path: string[]; length: number }[] {
  const raw = new Raw(info);
  const tree = raw.entries(0).find((e) => e.key.equals(FILE_TREE));
  if (tree === undefined) throw new MetainfoError(field, 'missing');
  const out: { path: string[]; length: number }[] = [];
  const walk = (at: number, prefix: string[], f: string): void => {
    if (!raw.isDict(at)) throw new MetainfoError(f, 'must be a dictionary');
    const entries = raw.entries(at).sort((a, b) => Buffer.compare(a.key, b.key));
    for (const { key, at: child } of entries) {
      if (key.length === 0) {
        if (prefix.length === 0) throw new MetainfoError(f, 'a file has no name');
        if (!raw.isDict(child)) throw new MetainfoError(`${f}[""]`, 'must be a dictionary');
        const props = raw.entries(child);
        const attr = props.find((e) => e.key.equals(ATTR));
        const len = props.find((e) => e.key.equals(LENGTH));
        // A symbolic link (BEP 47 `l`) holds no data: libtorrent writes it without a length.
        const link = attr !== undefined && raw.str(attr.at).bytes.includes(0x6c) && !len;
        const length = link ? 0 : len === undefined ? undefined : raw.int(len.at).value;
        if (length === undefined || length < 0) {
          throw new MetainfoError(`${f}[""].length`, 'must be a non-negative integer');
        }
        out.push({ path: prefix, length });
      } else {
        if (out.length > MAX_FILES)
          throw new MetainfoError(field, `has more than ${MAX_FILES} files`);
        const name = normalizeComponent(componentFromBytes(key).text);
        walk(child, [...prefix, name], `${f}[${quoted(name)}]`);
      }
    }
  };
  walk(tree.at, [], field);
  return out;
}

const FILE_TREE = Buffer.from('file tree');
const ATTR = Buffer.from('attr');
const LENGTH = Buffer.from('length');

/** Refuses a hybrid torrent whose v2 file tree does not describe the v1 files. */
export function checkHybrid(
  info: Buffer,
  files: TorrentFile[],
  name: string,
  multiFile: boolean,
  pieceLength: number,
  total: number,
): void {
  const field = 'info.file tree';
  const v2 = v2Files(info, field);
  const v1 = files
    .filter((f) => !f.padding)
    .map((f) => ({ path: multiFile ? f.path : [name], length: f.length, offset: f.offset }));
  const show = (f: { path: string[]; length: number } | undefined): string =>
    f === undefined ? 'nothing' : `${quoted(f.path.join('/'))} (${f.length} bytes)`;
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
        `does not match the v1 file list: file ${i + 1} (${quoted(a.path.join('/'))}) ` +
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
