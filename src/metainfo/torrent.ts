/**
 * .torrent (metainfo) parsing and validation. Every rejection names the offending field.
 */
import { createHash } from 'node:crypto';
import { MetainfoError } from '../errors.js';
import {
  type BValue,
  bytesToText,
  checkInt,
  decodeStrict,
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
  checkPathCollisions,
  checkPathComponent,
  checkRelativePath,
  normalizeComponent,
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
}

export interface Metainfo {
  /** SHA-1 of the raw `info` bytes exactly as they appear in the file. */
  infoHash: Buffer;
  infoHashHex: string;
  /** NFC-normalised. */
  name: string;
  pieceLength: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 hashes. */
  pieceHashes: Buffer;
  /** Total bytes. */
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
  urlList: string[];
}

/**
 * Reads a path component: `name`/`path` as UTF-8, falling back to the `.utf-8` variant some
 * tools add when the plain field is not valid UTF-8.
 */
function componentText(raw: BValue | undefined, alt: BValue | undefined, field: string): string {
  if (raw === undefined) throw new MetainfoError(field, 'missing');
  if (!isBytes(raw)) throw new MetainfoError(field, 'must be a byte string');
  let text: string;
  try {
    text = bytesToText(raw, field);
  } catch (err) {
    if (!isBytes(alt)) throw err;
    text = bytesToText(alt, field);
  }
  const normalized = normalizeComponent(text);
  checkPathComponent(normalized, field);
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

function parseUrlList(v: BValue | undefined): string[] {
  if (isBytes(v)) {
    const u = parseTrackerUrl(v);
    return u === undefined ? [] : [u];
  }
  if (!isList(v)) return [];
  const out: string[] = [];
  for (const item of v) {
    const u = parseTrackerUrl(item);
    if (u !== undefined) out.push(u);
  }
  return out;
}

/** Parses and validates a .torrent. Throws BencodeError or MetainfoError. */
export function parseTorrent(buf: Uint8Array): Metainfo {
  if (buf.length > MAX_TORRENT_FILE_BYTES) {
    throw new MetainfoError(
      'torrent',
      `file is ${buf.length} bytes, more than the ${MAX_TORRENT_FILE_BYTES} allowed`,
    );
  }
  const { value: root, span } = decodeStrict(buf, { spanOf: 'info' });
  if (!isDict(root)) throw new MetainfoError('torrent', 'top level must be a dictionary');
  const info = root['info'];
  if (info === undefined || span === undefined) throw new MetainfoError('info', 'missing');
  if (!isDict(info)) throw new MetainfoError('info', 'must be a dictionary');

  const infoHash = createHash('sha1').update(buf.subarray(span[0], span[1])).digest();

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

  const name = componentText(info['name'], info['name.utf-8'], 'info.name');

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

  const files: TorrentFile[] = [];
  let total = 0;
  if (hasLength) {
    const length = getInt(info, 'length', 'info.length', { min: 0 });
    files.push({ path: [name], length, offset: 0 });
    total = length;
  } else {
    const list = getList(info, 'files', 'info.files');
    if (list.length === 0) throw new MetainfoError('info.files', 'is empty');
    if (list.length > MAX_FILES) {
      throw new MetainfoError('info.files', `has ${list.length} entries, more than ${MAX_FILES}`);
    }
    list.forEach((entry, i) => {
      const field = `info.files[${i}]`;
      if (!isDict(entry)) throw new MetainfoError(field, 'must be a dictionary');
      const length = getInt(entry, 'length', `${field}.length`, { min: 0 });
      const rawPath = getList(entry, 'path', `${field}.path`);
      if (rawPath.length === 0) throw new MetainfoError(`${field}.path`, 'is empty');
      const alt = entry['path.utf-8'];
      const altPath = isList(alt) && alt.length === rawPath.length ? alt : undefined;
      const path = rawPath.map((c, k) => componentText(c, altPath?.[k], `${field}.path[${k}]`));
      checkRelativePath(path, `${field}.path`);
      files.push({ path, length, offset: total });
      total += length;
      if (total > Number.MAX_SAFE_INTEGER) {
        throw new MetainfoError('info.files', 'total length is too large');
      }
    });
    checkPathCollisions(
      files.map((f) => f.path),
      (i) => `info.files[${i}].path`,
    );
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

  const announce = parseTrackerUrl(root['announce']);
  const tiers = parseAnnounceList(root['announce-list']);
  const announceList = tiers.length > 0 ? tiers : announce !== undefined ? [[announce]] : [];

  const m: Metainfo = {
    infoHash,
    infoHashHex: infoHash.toString('hex'),
    name,
    pieceLength,
    pieceCount,
    pieceHashes,
    length: total,
    multiFile: hasFiles,
    files,
    announce,
    announceList,
    private: priv,
    urlList: parseUrlList(root['url-list']),
  };
  const comment = optText(root, 'comment');
  if (comment !== undefined) m.comment = comment;
  const createdBy = optText(root, 'created by');
  if (createdBy !== undefined) m.createdBy = createdBy;
  const creationDate = optInt(root, 'creation date');
  if (creationDate !== undefined) m.creationDate = creationDate;
  return m;
}

/** The 20-byte SHA-1 of piece `index` (a view into `m.pieceHashes`). */
export function pieceHash(m: Metainfo, index: number): Buffer {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) {
    throw new RangeError(`piece index ${index} out of range 0..${m.pieceCount - 1}`);
  }
  return m.pieceHashes.subarray(index * HASH_LENGTH, (index + 1) * HASH_LENGTH);
}
