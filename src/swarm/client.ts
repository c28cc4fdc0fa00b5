/**
 * One download from parsed metainfo to files on disk: plans the output, opens storage, picks the
 * peer source (the trackers, or the peers given by hand) and runs the orchestrator. The CLI calls
 * this and only renders what it reports.
 */
import { NoPeersError } from '../errors.js';
import type { Metainfo } from '../metainfo/torrent.js';
import { makePeerId } from '../peer/peer-id.js';
import { DiskStorage } from '../storage/disk.js';
import { Layout } from '../storage/layout.js';
import { planOutput, type OutputPlan } from '../storage/output.js';
import { Announcer } from '../tracker/announcer.js';
import type { PeerAddress } from '../tracker/types.js';
import { Download, type DownloadStats } from './download.js';

/** The port announced to trackers. tdl does not accept incoming connections. */
export const ANNOUNCE_PORT = 6881;

export interface ClientOptions {
  meta: Metainfo;
  output?: string;
  /** Known peers: when given, trackers are not asked. */
  peers?: PeerAddress[];
  maxPeers?: number;
  peerTimeoutMs?: number;
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** Called once the output is planned and the download is about to start. */
  onStart?: (download: Download, plan: OutputPlan) => void;
}

export interface ClientResult {
  stats: DownloadStats;
  plan: OutputPlan;
}

export async function download(o: ClientOptions): Promise<ClientResult> {
  const { meta } = o;
  const peers = o.peers ?? [];
  const useTrackers = peers.length === 0;
  if (useTrackers && meta.announceList.length === 0) {
    throw new NoPeersError('the torrent names no tracker: give peers with --peer HOST:PORT');
  }
  const layout = new Layout(meta.files, meta.pieceLength, meta.length);
  const plan = await planOutput(meta, o.output);
  const storage = await DiskStorage.open(plan, layout);
  try {
    const peerId = makePeerId();
    let dl: Download | null = null;
    const tracker = useTrackers
      ? new Announcer({
          announceList: meta.announceList,
          infoHash: meta.infoHash,
          peerId,
          port: ANNOUNCE_PORT,
          stats: () => {
            const s = dl?.stats();
            return {
              uploaded: 0,
              downloaded: s?.downloaded ?? 0,
              left: s ? s.total - s.completed : meta.length,
            };
          },
        })
      : undefined;
    dl = new Download({
      meta,
      layout,
      storage,
      peerId,
      peers,
      tracker,
      maxPeers: o.maxPeers,
      peerTimeoutMs: o.peerTimeoutMs,
      stallTimeoutMs: o.stallTimeoutMs,
      signal: o.signal,
    });
    o.onStart?.(dl, plan);
    const stats = await dl.run();
    return { stats, plan };
  } finally {
    await storage.close();
  }
}
