/**
 * From a magnet link to metainfo: the metadata kept by an earlier run (`<root>.tdl-torrent`
 * beside the resume file), else fetched from peers (src/swarm/metadata-swarm.ts). Either way it
 * goes through the same strict parser and path checks as a .torrent file, so a hostile info
 * dictionary that hashes right is refused (exit 3) before anything is created.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import type { Dht } from '../dht/dht.js';
import { DhtPeerSource } from '../dht/peer-source.js';
import { UsageError } from '../errors.js';
import type { Magnet } from '../metainfo/magnet.js';
import { MAX_TORRENT_FILE_BYTES, parseTorrent, type Metainfo } from '../metainfo/torrent.js';
import { Announcer } from '../tracker/announcer.js';
import type { PeerAddress } from '../tracker/types.js';
import { torrentFromInfo } from './metadata-fetch.js';
import type { PeerSource } from './download.js';
import { MetadataSwarm } from './metadata-swarm.js';
import type { PeerOrigin } from './peer-pool.js';

const log = createDebug('tdl:metadata');

/** The metadata of an incomplete download from a magnet link, kept beside its resume file. */
export const METADATA_SUFFIX = '.tdl-torrent';
/** Files looked at when searching for kept metadata. */
const MAX_CANDIDATES = 64;

export interface MagnetOptions {
  magnet: Magnet;
  output?: string;
  /** `--peer` addresses, beside the magnet's `x.pe`. */
  peers: PeerAddress[];
  peerId: Buffer;
  timeoutMs: number;
  handshakeMs: number;
  signal?: AbortSignal;
  /** Called about once a second while fetching, with the peers connected and those with metadata. */
  onProgress?: (p: { connected: number; withMetadata: number; known: number }) => void;
  onWarning?: (message: string) => void;
  /** The DHT, to find peers of magnets without trackers too. */
  dht?: Dht | null;
}

export interface ResolvedMagnet {
  meta: Metainfo;
  /** A .torrent around the exact info bytes, with the magnet's trackers. */
  torrent: Buffer;
  /** Peers that answered while fetching (dialled again for the data). */
  peers: PeerAddress[];
  /** The metadata came from an earlier run's kept copy. */
  fromCache: boolean;
}

export async function resolveMagnet(o: MagnetOptions): Promise<ResolvedMagnet> {
  const kept = await findKept(o.magnet.infoHash, o.output);
  if (kept) {
    log('metadata kept by an earlier run: %s', kept.file);
    return { meta: kept.meta, torrent: kept.torrent, peers: [], fromCache: true };
  }
  const trackers = o.magnet.trackers;
  const announcer =
    trackers.length > 0
      ? new Announcer({
          announceList: trackers,
          infoHash: o.magnet.infoHash,
          peerId: o.peerId,
          // Not listening yet: the download announces its real port once it does.
          port: 0,
          stats: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
        })
      : null;
  const peers = [...o.magnet.peers, ...o.peers];
  if (!announcer && peers.length === 0 && !o.dht) {
    throw new UsageError(
      'the magnet link names no tracker and no peer, and the DHT is off: give peers with --peer HOST:PORT',
    );
  }
  const dhtSource = o.dht ? new DhtPeerSource(o.dht, o.magnet.infoHash) : null;
  const sources: { source: PeerSource; origin: PeerOrigin }[] = [];
  if (announcer) sources.push({ source: announcer, origin: 'tracker' });
  if (dhtSource) sources.push({ source: dhtSource, origin: 'dht' });
  const swarm = new MetadataSwarm({
    infoHash: o.magnet.infoHash,
    peerId: o.peerId,
    peers,
    sources,
    timeoutMs: o.timeoutMs,
    handshakeMs: o.handshakeMs,
    signal: o.signal,
  });
  if (o.onWarning) swarm.on('warning', o.onWarning);
  swarm.on('progress', () => o.onProgress?.(swarm.counts()));
  try {
    const r = await swarm.run();
    const torrent = torrentFromInfo(r.info, trackers);
    // The same checks as a .torrent file: a hostile info dictionary is refused here.
    const meta = parseTorrent(torrent);
    return { meta, torrent, peers: r.peers, fromCache: false };
  } finally {
    if (announcer) await announcer.stop().catch(() => {});
    await dhtSource?.stop().catch(() => {});
  }
}

/** Write `<file>` (for `--save-torrent`). */
export async function saveTorrent(file: string, torrent: Buffer): Promise<void> {
  await writeFile(file, torrent);
}

/**
 * Metadata kept by an earlier run of the same magnet and output: `*.tdl-torrent` files in the
 * output folder or the folder that holds it, whose info hash matches.
 */
async function findKept(
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
