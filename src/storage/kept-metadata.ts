/**
 * The metadata a download keeps beside its output (`<output>.tdl-torrent`: a magnet link's
 * .torrent, so that the same command run again resumes without waiting for peers): finding
 * what an earlier run kept, and telling tdl's file from a file of the user's in its place.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { DiskError } from '../errors.js';
import { logger } from '../log.js';
import { decodeStrict, isDict } from '../metainfo/bencode.js';
import { MAX_TORRENT_FILE_BYTES, parseTorrent, type Metainfo } from '../metainfo/torrent.js';
import { lstatOrNull, OPEN_READ } from './fs-util.js';
import { METADATA_SUFFIX } from './names.js';

const log = logger('tdl:storage');

/** Files looked at when searching for kept metadata. */
const MAX_CANDIDATES = 64;

/**
 * Whether something is at `<output>.tdl-torrent`, where a download keeps a magnet's metadata
 * (written whole to a temporary file renamed over it) and which its end removes. A regular file
 * there that is not a bencoded dictionary with an `info` dictionary is not tdl's: DiskError
 * (exit 6), and it is kept, as at the resume, parts and lock files' places. An empty file, a
 * link or anything else that is not a file is replaced (a link never followed).
 */
export async function metadataThere(file: string): Promise<boolean> {
  let h;
  try {
    h = await open(file, OPEN_READ);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    return (await lstatOrNull(file)) !== null;
  }
  try {
    const st = await h.stat();
    // Empty: holds nothing to lose (a copy cut short by a crash of the system).
    if (!st.isFile() || st.size === 0) return true;
    if (st.size <= MAX_TORRENT_FILE_BYTES) {
      try {
        const { value } = decodeStrict(await h.readFile(), { largeIntegers: true });
        if (isDict(value) && isDict(value['info'])) return true;
      } catch {
        // not bencode: not tdl's
      }
    }
  } finally {
    await h.close().catch(() => {});
  }
  throw new DiskError(
    `${file} is in the way of the kept metadata: it is not a torrent file (move it away)`,
  );
}

/**
 * Metadata kept by an earlier run of the same magnet and output: `*.tdl-torrent` files in the
 * output folder or the folder that holds it, whose info hash matches.
 */
export async function findKept(
  infoHash: Buffer,
  output: string | undefined,
): Promise<{ file: string; meta: Metainfo; torrent: Buffer } | null> {
  const out = path.resolve(output ?? '.');
  const dirs = [...new Set([out, path.dirname(out)])];
  let looked = 0;
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.endsWith(METADATA_SUFFIX) || looked++ >= MAX_CANDIDATES) continue;
      const file = path.join(dir, name);
      try {
        const st = await stat(file);
        if (!st.isFile() || st.size > MAX_TORRENT_FILE_BYTES) continue;
        const torrent = await readFile(file);
        const meta = parseTorrent(torrent);
        if (meta.infoHash.equals(infoHash)) return { file, meta, torrent };
      } catch (e) {
        log('%s: not usable (%s)', file, (e as Error).message);
      }
    }
  }
  return null;
}
