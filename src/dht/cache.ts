/**
 * The routing-table cache: our node id and the nodes of the table, so the next run starts warm.
 *
 * File: `$XDG_CACHE_HOME/tdl/dht.dat`, else `~/.cache/tdl/dht.dat`. Content: one bencoded
 * dictionary `{ id: <20 bytes>, nodes: <compact node info, 26 bytes each> }`. Written
 * atomically (a temporary file in the same directory, then rename). Read with the strict
 * bencode guard and size caps; anything wrong makes `loadCache` throw a DhtError, which the
 * service turns into a warning.
 */
import { constants } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { DhtError, systemErrorText, TdlError } from '../errors.js';
import { decodeStrict, encode, isBytes, isDict } from '../metainfo/bencode.js';
import { makeFolders } from '../storage/fs-util.js';
import { decodeNodes, encodeNodes, NODE4_BYTES } from './krpc.js';
import type { NodeInfo } from './krpc.js';
import { ID_LENGTH } from './node-id.js';
import { MAX_TABLE_NODES } from './routing-table.js';

export const MAX_CACHE_BYTES = 64 * 1024;

export interface CachedTable {
  id: Buffer;
  nodes: NodeInfo[];
}

/**
 * tdl's cache folder: `$XDG_CACHE_HOME/tdl`, else `~/.cache/tdl` (an `XDG_CACHE_HOME` that is
 * not an absolute path is ignored, as the XDG rules say). The home folder is `HOME` when it is an
 * absolute path, else the user's passwd entry's. Null when neither is known (`HOME` unset or
 * relative and no passwd entry, as in some containers).
 */
export function cacheFolder(env: NodeJS.ProcessEnv = process.env): string | null {
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg && xdg.startsWith('/')) return join(xdg, 'tdl');
  let home = env['HOME'] ?? '';
  if (!home.startsWith('/')) home = accountHome() ?? '';
  return home.startsWith('/') ? join(home, '.cache', 'tdl') : null;
}

/** The home folder of the user's passwd entry (not `HOME`); null when there is none. */
function accountHome(): string | null {
  try {
    return userInfo().homedir || null;
  } catch {
    return null;
  }
}

/** The DHT's cache file in cacheFolder; null when there is none. */
export function defaultCacheFile(env: NodeJS.ProcessEnv = process.env): string | null {
  const folder = cacheFolder(env);
  return folder === null ? null : join(folder, 'dht.dat');
}

export function encodeCache(t: CachedTable): Buffer {
  return encode({ id: t.id, nodes: encodeNodes(t.nodes.slice(0, MAX_TABLE_NODES), 4) });
}

/** Parses a cache file's bytes; throws DhtError when it is not a valid cache. */
export function decodeCache(buf: Uint8Array): CachedTable {
  if (buf.length > MAX_CACHE_BYTES)
    throw new DhtError(`cache is larger than ${MAX_CACHE_BYTES} bytes`);
  let value;
  try {
    value = decodeStrict(buf, { maxDepth: 2 }).value;
  } catch (err) {
    if (err instanceof TdlError) throw new DhtError(`cache is not valid bencode: ${err.message}`);
    throw err;
  }
  if (!isDict(value)) throw new DhtError('cache is not a dictionary');
  const id = value['id'];
  const nodes = value['nodes'];
  if (!isBytes(id) || id.length !== ID_LENGTH) throw new DhtError('cache id must be 20 bytes');
  if (!isBytes(nodes) || nodes.length % NODE4_BYTES !== 0) {
    throw new DhtError('cache nodes must be a multiple of 26 bytes');
  }
  return { id: Buffer.from(id), nodes: decodeNodes(nodes, 4, MAX_TABLE_NODES) };
}

/** Reads the cache; null when the file does not exist; throws DhtError when it is bad. */
export async function loadCache(file: string): Promise<CachedTable | null> {
  let buf: Buffer;
  try {
    // Without blocking: a FIFO in its place would wait for a writer for good.
    const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new DhtError('cache is not a regular file');
      if (st.size > MAX_CACHE_BYTES)
        throw new DhtError(`cache is larger than ${MAX_CACHE_BYTES} bytes`);
      buf = await readFile(fh);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (err instanceof DhtError) throw err;
    throw new DhtError(`cannot read cache: ${systemErrorText(err)}`);
  }
  return decodeCache(buf);
}

/** Writes the cache atomically (temporary file, fsync, rename). Throws DhtError on failure. */
export async function saveCache(file: string, t: CachedTable): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await makeFolders(dirname(file));
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(encodeCache(t));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new DhtError(`cannot write cache ${file}: ${systemErrorText(err)}`);
  }
}
