/**
 * The torrent a command works on: a .torrent (file, stdin, URL) or a magnet link, whose metadata
 * is fetched from peers while a line says so ("fetching metadata from N peers").
 */
import { UsageError } from '../errors.js';
import type { Dht } from '../dht/dht.js';
import type { EncryptionMode } from '../peer/connection.js';
import {
  isMagnet,
  MAX_MAGNET_PEERS,
  MAX_MAGNET_TRACKERS,
  MAX_MAGNET_WEB_SEEDS,
  parseMagnet,
} from '../metainfo/magnet.js';
import { type Metainfo } from '../metainfo/torrent.js';
import type { PeerAddress } from '../tracker/types.js';
import type { ListenOptions } from '../swarm/listener.js';
import type { MagnetHandoff } from '../swarm/magnet.js';
import { terminalColumns } from './format.js';
import { metadataLine } from './progress.js';
import { Pacer } from './events.js';
import { fdOf, fileTarget, isDescriptor, writeTarget } from './output-file.js';
import type { CliIO } from './program.js';
import { loadTorrentBytes, parseTorrentFrom } from './torrent-file.js';

/**
 * Least time between two `metadata` `fetching` events of the same counts: the once-a-second
 * tick of the metadata swarm gets through, pieces arriving in between do not.
 */
const METADATA_EVENT_MS = 900;

export interface OpenedTorrent {
  meta: Metainfo;
  /** For a magnet link: the .torrent built around the fetched info bytes. */
  torrentBytes?: Buffer;
  /** For a magnet link: its own peers and those that answered. */
  peers: PeerAddress[];
  magnet: boolean;
  /** With `OpenOptions.handoff`, for fetched metadata: give it to the download, or close it. */
  handoff?: MagnetHandoff | null;
  /** A magnet link's `so` (BEP 53): file indexes from 0 (see selectionFromIndexes). */
  selectOnly?: readonly number[];
}

export interface OpenOptions {
  peers: PeerAddress[];
  output?: string;
  timeoutMs: number;
  handshakeMs: number;
  saveTorrent?: string;
  /** Called with the metadata before `saveTorrent` is written: throws to refuse that path. */
  checkSave?: (meta: Metainfo) => Promise<void>;
  /** Where progress goes: a redrawn line on a TTY, `metadata` JSON events, or nothing. */
  tty: boolean;
  emit?: (o: Record<string, unknown>) => void;
  warn: (message: string) => void;
  dht?: Dht | null;
  encryption?: EncryptionMode;
  /** Outgoing connections are made from this address (`--bind`). */
  localAddress?: string;
  /** A download follows: keep the metadata phase's connections for it (see swarm/magnet.ts). */
  handoff?: { listen: ListenOptions | false };
}

export async function openTorrent(
  source: string,
  o: OpenOptions,
  io: CliIO,
): Promise<OpenedTorrent> {
  // Checked before any wait: a bad path fails now, not after the metadata came.
  const save = o.saveTorrent === undefined ? null : fileTarget(o.saveTorrent, '--save-torrent');
  // Stdout by another name (`/dev/stdout`) carries the stream, the events or tdl info's text.
  if (save && isDescriptor(save, fdOf(io.stdout))) {
    throw new UsageError(
      `--save-torrent ${o.saveTorrent} is this run's stdout, which carries its output: name a file`,
    );
  }
  if (!isMagnet(source)) {
    const bytes = await loadTorrentBytes(source, {
      stdin: io.stdin,
      signal: io.signal,
      ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }),
    });
    const meta = parseTorrentFrom(bytes, source);
    // A copy of the .torrent as it came (from stdin or a URL, say); the same file, named again,
    // gets its own bytes back.
    if (save) {
      await o.checkSave?.(meta);
      await writeTarget(save, bytes, io.signal);
    }
    return { meta, peers: [], magnet: false };
  }
  const magnet = parseMagnet(source);
  const { trackers, peers, webSeeds } = magnet.leftOut;
  for (const [n, what, cap] of [
    [trackers, 'tr trackers', MAX_MAGNET_TRACKERS],
    [peers, 'x.pe peers', MAX_MAGNET_PEERS],
    [webSeeds, 'ws web seeds', MAX_MAGNET_WEB_SEEDS],
  ] as const) {
    if (n > 0) o.warn(`the magnet link names more than ${cap} ${what}: ${n} more left out`);
  }
  // The peer machinery is loaded only for magnet links: `tdl info x.torrent` stays light.
  const { resolveMagnet } = await import('../swarm/magnet.js');
  const { makePeerId } = await import('../peer/peer-id.js');
  let last = '';
  /** The counts of the last `metadata` event, and its pace. */
  let lastCounts = '';
  const metadataPace = new Pacer(METADATA_EVENT_MS);
  // The "fetching metadata" line goes however the wait ends (an error, Ctrl-C, the metadata).
  const clearLine = () => {
    if (o.tty && last) io.stderr.write('\r\x1b[2K');
    last = '';
  };
  const r = await resolveMagnet({
    magnet,
    output: o.output,
    peers: o.peers,
    peerId: makePeerId(),
    timeoutMs: o.timeoutMs,
    handshakeMs: o.handshakeMs,
    signal: io.signal,
    onWarning: o.warn,
    dht: o.dht,
    encryption: o.encryption,
    localAddress: o.localAddress,
    handoff: o.handoff,
    onProgress: (p) => {
      if (o.tty) {
        // Fitted to the terminal's width like the progress line: a wrapped line breaks the `\r`.
        // The link's `dn` names the torrent until the metadata does; the DHT's nodes say
        // whether a link without trackers can find anyone at all.
        const line = metadataLine(
          {
            withMetadata: p.withMetadata,
            connected: p.connected,
            known: p.known,
            ...(o.dht ? { dhtNodes: o.dht.nodeCount() } : {}),
            ...(magnet.displayName !== undefined ? { name: magnet.displayName } : {}),
          },
          terminalColumns(io.stderr),
        );
        // Drawn at every tick, changed or not: a warning may have wiped it since.
        io.stderr.write(`\r\x1b[2K${line}`);
        last = line;
      }
      // An event when the counts change, and once a second: metadata pieces arriving from the
      // same peers would otherwise write the same line hundreds of times (a 14 MB info).
      const counts = `${p.connected}/${p.withMetadata}/${p.known}`;
      if (!metadataPace.pass(counts !== lastCounts)) return;
      lastCounts = counts;
      o.emit?.({
        event: 'metadata',
        state: 'fetching',
        peers: p.connected,
        withMetadata: p.withMetadata,
        known: p.known,
        ...(magnet.displayName !== undefined ? { name: magnet.displayName } : {}),
      });
    },
  }).finally(clearLine);
  o.emit?.({
    event: 'metadata',
    state: r.fromCache ? 'kept' : 'done',
    infoHash: r.meta.infoHashHex,
    size: r.torrent.length,
  });
  if (save) {
    try {
      await o.checkSave?.(r.meta);
      await writeTarget(save, r.torrent, io.signal);
    } catch (e) {
      await r.handoff?.close();
      throw e;
    }
  }
  return {
    meta: r.meta,
    torrentBytes: r.torrent,
    peers: [...magnet.peers, ...r.peers],
    magnet: true,
    handoff: r.handoff,
    selectOnly: magnet.selectOnly,
  };
}
