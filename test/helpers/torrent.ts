/**
 * Builds .torrent files (and their payload) for tests.
 *
 *   const t = makeTorrent({ name: 'a.bin', pieceLength: 16384, files: { data } });
 *   const t = makeTorrent({ name: 'dir', pieceLength: 32768,
 *                           files: [{ path: ['x', 'y.txt'], data: d1 }, { path: ['z'], data: d2 }] });
 *
 * Returns the encoded torrent, its info hash, the data of each piece and the concatenated data.
 */
import { createCipheriv, createHash } from 'node:crypto';
import bencode from 'bencode';
import { Layout } from '../../src/storage/layout.js';

export interface MakeTorrentOptions {
  name: string;
  pieceLength: number;
  /** An array means a multi-file torrent (paths without the top folder); an object, single-file. */
  files: { path: string[]; data: Buffer; attr?: string; symlink?: string[] }[] | { data: Buffer };
  announce?: string;
  announceList?: string[][];
  /** Extra keys merged into the info dictionary (they override computed ones, e.g. `pieces`). */
  extraInfo?: Record<string, unknown>;
  /** Extra keys merged into the top-level dictionary (e.g. comment, 'created by'). */
  extraRoot?: Record<string, unknown>;
}

export interface MadeTorrent {
  torrent: Buffer;
  infoHash: Buffer;
  /** Data of each piece (the last one may be shorter). */
  pieces: Buffer[];
  /** Concatenation of all file data. */
  data: Buffer;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function makeTorrent(opts: MakeTorrentOptions): MadeTorrent {
  const data = Array.isArray(opts.files)
    ? Buffer.concat(opts.files.map((f) => f.data))
    : opts.files.data;

  const pieces: Buffer[] = [];
  const hashes: Buffer[] = [];
  for (let off = 0; off < data.length; off += opts.pieceLength) {
    const piece = data.subarray(off, Math.min(off + opts.pieceLength, data.length));
    pieces.push(piece);
    hashes.push(createHash('sha1').update(piece).digest());
  }

  const info: Record<string, unknown> = {
    name: opts.name,
    'piece length': opts.pieceLength,
    pieces: Buffer.concat(hashes),
  };
  if (Array.isArray(opts.files)) {
    info['files'] = opts.files.map((f) => ({
      length: f.data.length,
      path: f.path,
      ...(f.attr !== undefined ? { attr: f.attr } : {}),
      ...(f.symlink !== undefined ? { 'symlink path': f.symlink } : {}),
    }));
  } else {
    info['length'] = data.length;
  }
  Object.assign(info, opts.extraInfo);

  const root: Record<string, unknown> = { info };
  if (opts.announce !== undefined) root['announce'] = opts.announce;
  if (opts.announceList !== undefined) root['announce-list'] = opts.announceList;
  Object.assign(root, opts.extraRoot);

  const torrent = toBuffer(bencode.encode(root));
  // bencode.encode sorts keys, so the info bytes in the file are exactly encode(info).
  const infoHash = createHash('sha1').update(bencode.encode(info)).digest();
  return { torrent, infoHash, pieces, data };
}

/** Reproducible pseudo-random bytes (AES-128-CTR keystream keyed by the seed): fast for MiBs. */
export function randomBytesSeeded(n: number, seed: number | string): Buffer {
  const key = createHash('sha256').update(`tdl-test-seed:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(n)), cipher.final()]);
}

/** A file of a torrent built by hand for the storage tests (no .torrent is encoded). */
export interface HandFile {
  path: string[];
  length: number;
  padding?: boolean;
}

/**
 * A metainfo-shaped multi-file torrent over these files, with its layout, data and pieces:
 * padding files hold zeros, the others seeded bytes; the piece hashes are the real ones.
 */
export function handTorrent(name: string, pieceLength: number, spec: HandFile[]) {
  let offset = 0;
  const files = spec.map((f) => {
    const o = { ...f, offset };
    offset += f.length;
    return o;
  });
  const data = Buffer.concat(
    files.map((f, i) => (f.padding ? Buffer.alloc(f.length) : randomBytesSeeded(f.length, i))),
  );
  const layout = new Layout(files, pieceLength, data.length);
  const pieces = Array.from({ length: layout.pieceCount }, (_, i) =>
    data.subarray(i * pieceLength, Math.min(data.length, (i + 1) * pieceLength)),
  );
  const pieceHashes = Buffer.concat(pieces.map((p) => createHash('sha1').update(p).digest()));
  const meta = {
    name,
    multiFile: true,
    infoHash: createHash('sha1').update(name).digest(),
    files,
    pieceLength,
    length: data.length,
    pieceCount: layout.pieceCount,
    pieceHashes,
  };
  return { meta, layout, data, pieces };
}
