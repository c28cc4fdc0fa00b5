/**
 * .torrent (metainfo) parsing and validation. Every rejection names the offending field.
 *
 * parseTorrent is here; the parts it reads with are beside it: the file entries
 * (file-entries.ts), the lazily made file list and its accessors (file-table.ts), trackers,
 * DHT nodes and web seeds (sources.ts), the hybrid v1+v2 check (hybrid.ts). The types of a
 * parsed torrent and the caps are in types.ts; this module re-exports them, so that a parsed
 * torrent's whole API is imported from one place.
 */
import { createHash } from 'node:crypto';
import { MetainfoError } from '../errors.js';
import {
  type BValue,
  type RawFileEntry,
  checkInt,
  decodeStrict,
  getBytes,
  getInt,
  getList,
  isBytes,
  isDict,
  optInt,
  optText,
  tryText,
} from './bencode.js';
import { componentText, FastEntries, fileAttributes, parseFileEntry } from './file-entries.js';
import { FileTable, keepFileTable } from './file-table.js';
import { checkHybrid } from './hybrid.js';
import {
  checkPathCollisions,
  componentFromBytes,
  normalizeComponent,
  PathHashes,
  percentEncodeInvalidUtf8,
} from './paths.js';
import { parseAnnounceList, parseNodes, parseTrackerUrl, parseWebSeeds } from './sources.js';
import {
  MAX_FILES,
  MAX_PIECE_LENGTH,
  MAX_TORRENT_FILE_BYTES,
  type Metainfo,
  type TorrentFile,
} from './types.js';
import { Warnings } from './warnings.js';

export * from './types.js';
export {
  contentLength,
  fileAt,
  fileCount,
  type FileList,
  fileList,
  fileOffsets,
  isPaddingFile,
  paddingFileCount,
} from './file-table.js';
export { isHttpUrl, MAX_NODES } from './sources.js';

const HASH_LENGTH = 20;

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
    const entry = decodeStrict(whole.subarray(e.start, e.end), { largeIntegers: true }).value;
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
    largeIntegers: true,
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
    // BEP 27 writes 1; any other non-zero value is taken as private too, as other clients do
    // (refusing it would only stop the download; taking it as public would break the tracker's
    // rule).
    // The same for a value that is not an integer at all (`"1"`, `-1`, a list): only 0 is public.
    const p = info['private'];
    priv = p !== 0;
    if (p !== 0 && p !== 1) {
      const shown =
        typeof p === 'number' || typeof p === 'bigint'
          ? String(p)
          : Buffer.isBuffer(p) && p.length <= 20 && /^[\x20-\x7e]*$/.test(p.toString('latin1'))
            ? JSON.stringify(p.toString('latin1'))
            : 'not an integer';
      warnings.addGeneral(`info.private is ${shown}: taken as 1 (a private torrent)`);
    }
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
    if (info['file tree'] === undefined) throw new MetainfoError('info.file tree', 'missing');
    // The v2 name (of the single file) is the raw name, mapped as v1's is without name.utf-8.
    const v2Name = isBytes(info['name']) ? componentFromBytes(info['name']).text : undefined;
    checkHybrid(
      infoBytes,
      files ?? table.all(),
      v2Name === undefined ? name : normalizeComponent(v2Name),
      hasFiles,
      pieceLength,
      total,
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
  // Free text: its `.utf-8` variant when there is one, else the field itself, with bytes that
  // are not UTF-8 (old torrents' legacy encodings) shown as %XX, as names are, and said so.
  const freeText = (key: string): string | undefined => {
    const utf8 = optText(root, `${key}.utf-8`);
    if (utf8 !== undefined) return utf8;
    const v = root[key];
    if (!isBytes(v)) return undefined;
    const text = tryText(v);
    if (text !== undefined) return text;
    warnings.addGeneral(`${key}: not valid UTF-8; its other bytes are shown as %XX`);
    return percentEncodeInvalidUtf8(v);
  };
  const comment = freeText('comment');
  if (comment !== undefined) m.comment = comment;
  // `info.source`, which some private trackers ask for (it changes the info hash): shown.
  const source = info['source'];
  if (isBytes(source) && source.length > 0) {
    m.source = tryText(source) ?? percentEncodeInvalidUtf8(source);
  }
  const createdBy = freeText('created by');
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
    keepFileTable(m, table);
  }
  return m;
}

/** The 20-byte SHA-1 of piece `index` (a view into `m.pieceHashes`). */
export function pieceHash(m: Metainfo, index: number): Buffer {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) {
    throw new RangeError(`piece index ${index} out of range 0..${m.pieceCount - 1}`);
  }
  return m.pieceHashes.subarray(index * HASH_LENGTH, (index + 1) * HASH_LENGTH);
}
