/**
 * What the swarm's download takes and gives (src/swarm/download.ts): its options, the sources of
 * peer addresses and the storage it is handed, and the events and figures it reports.
 */
import type { EventEmitter } from 'node:events';
import type { Metainfo } from '../metainfo/torrent.js';
import type {
  ConnectionEncryption,
  EncryptionMode,
  PeerConnection,
  PeerTimeouts,
} from '../peer/connection.js';
import type { Layout } from '../storage/layout.js';
import type { PeerAddress } from '../tracker/types.js';
import type { Bitfield } from '../wire/bitfield.js';
import type { Listener } from './listener.js';
import type { PiecePadding } from './padding.js';
import type { HandoffCandidate, PeerOrigin } from './peer-pool.js';
import type { PieceTap } from './piece-store.js';
import type { Waste } from './requests.js';

/** Where peer addresses come from (trackers, DHT): emits 'peers' and 'warning'. */
export interface PeerSource extends EventEmitter {
  start(): void;
  requestMore(): void;
  complete(): Promise<void>;
  stop(): Promise<void>;
  /** The last failure of each source that is failing, for the final error message. */
  readonly failures: readonly { url: string; message: string }[];
}

/**
 * Live connections from a magnet link's metadata phase (swarm/magnet.ts MagnetHandoff): the
 * download takes them rather than dialling the same peers again.
 */
export interface PeerHandoff {
  /** Known addresses; `busy`: connected, or still being dialled by the metadata phase. */
  candidates(): HandoffCandidate[];
  /**
   * Hands over each live connection now through `sink.peer` (metadata-only: adopt it), and
   * each attempt still in flight once it opens (`sink.peer`) or fails (`sink.gone`).
   */
  take(
    pieceCount: number,
    sink: {
      peer(conn: PeerConnection, origin: PeerOrigin, extHandshake: Buffer | null): void;
      gone(address: string): void;
    },
  ): void;
}

/** What the swarm reads from and writes to (DiskStorage). */
export interface SwarmStorage {
  writePiece(index: number, data: Buffer): Promise<void>;
  /** Drop the writes queued and not begun, which reject with WriteCancelled (a run stopping). */
  cancelQueuedWrites?(): number;
  readBlock(index: number, begin: number, length: number): Promise<Buffer>;
}

export interface DownloadOptions {
  meta: Metainfo;
  layout: Layout;
  storage: SwarmStorage;
  peerId: Buffer;
  /** Pieces already verified on disk. */
  have?: Bitfield;
  /** The pieces to fetch (a file selection); absent: every piece. */
  wanted?: Bitfield;
  /** BEP 47 padding in the pieces (see padding.ts); absent: found from `meta`. */
  padding?: PiecePadding | null;
  /** Pieces whose bytes on disk are other data: counted in `piecesReplaced` once rewritten. */
  replacing?: Bitfield;
  /** Peers given by hand (`--peer`). */
  peers?: PeerAddress[];
  /** A magnet link's own peers (`x.pe`), labelled `magnet` in `peer` events. */
  magnetPeers?: PeerAddress[];
  tracker?: PeerSource;
  /** More peer sources (the DHT), each with its origin name. */
  sources?: { source: PeerSource; origin: PeerOrigin; quiet?: boolean }[];
  /** The DHT's figures for the progress line (DownloadStats.dht), when a DHT is used. */
  dhtStats?: () => { nodes: number; peers: number };
  /** Web seed URLs (BEP 19): pieces over HTTP beside the peers. */
  webSeeds?: string[];
  /** Incoming connections; none when absent. */
  listener?: Listener | null;
  /** Connections kept from a magnet link's metadata phase (taken when run() starts). */
  handoff?: PeerHandoff;
  maxPeers?: number;
  /**
   * Goes on as a seed once complete (`--seed`, `tdl seed`): it still dials the addresses it
   * learns (not those known to be seeds), since peers that came before it cannot know of it
   * until their next announce; without, a complete download dials no one.
   */
  seeds?: boolean;
  /** Handshake, bitfield and unchoke must each come within this (single-peer mode). */
  peerTimeoutMs?: number;
  /** Give up when no data arrives for this long. */
  stallTimeoutMs?: number;
  /**
   * Other timeouts (tests): the peer connection's, `requestMs` (REQUEST_TIMEOUT_MS) and
   * `idleWhileCompleteMs` (IDLE_WHILE_COMPLETE_MS).
   */
  timeouts?: Partial<PeerTimeouts> & { requestMs?: number; idleWhileCompleteMs?: number };
  uploadSlots?: number;
  /** Bytes per second; 0 or absent = unlimited. */
  maxUploadRate?: number;
  maxDownloadRate?: number;
  /** How our own connections are made (`--encryption`; default allow). */
  encryption?: EncryptionMode;
  /** Outgoing connections (peers, trackers, web seeds) are made from this address (`--bind`). */
  localAddress?: string;
  signal?: AbortSignal;
  random?: () => number;
  /** Reads each verified piece from memory while it goes to disk (the `-o -` stream). */
  tap?: PieceTap;
  /**
   * Settles once blocks may be asked for (the resume file's first checkpoint is written, see
   * docs/DESIGN.md "Start-up"); a rejection fails the download with its error. Meanwhile peers
   * are dialled, handshaken and told we are interested, so their unchokes are on the way.
   */
  ready?: Promise<void>;
}

export interface PeerEvent {
  address: string;
  status: 'connecting' | 'connected' | 'ready' | 'dropped' | 'banned';
  reason?: string;
  /** Where the address came from. */
  source?: PeerOrigin;
  /** With `connected`: how the connection is encrypted (see `--encryption`). */
  encryption?: ConnectionEncryption;
}

export interface DownloadStats {
  total: number;
  /** Verified bytes, including what was on disk at the start. */
  completed: number;
  /** Bytes present at the start. */
  initial: number;
  /** Verified bytes fetched in this run. */
  downloaded: number;
  /** Bytes received that were thrown away, in all and by cause. */
  wasted: number;
  wastedBy: Waste;
  piecesDone: number;
  pieceCount: number;
  /** Bytes per second over the last few seconds. */
  rate: number;
  /** Payload bytes sent to peers, and the rate over the last few seconds. */
  uploaded: number;
  uploadRate: number;
  /** Peers we unchoke that are interested (being served). */
  served: number;
  connected: number;
  /** Peers that sent data in the last few seconds. */
  active: number;
  peersUsed: number;
  /** Verified bytes of this run that web seeds sent (padding left out). */
  fromWebSeeds: number;
  piecesReplaced: number;
  elapsedMs: number;
  /** Milliseconds from the start to the first unchoke by a peer (-1: none yet). */
  firstUnchokeMs: number;
  /** Memory held by pieces in progress or waiting for the disk, and its budget. */
  heldBytes: number;
  budgetBytes: number;
  /** With a DHT: the nodes it knows, and the peers it found for this torrent. */
  dht?: { nodes: number; peers: number };
}

export interface DownloadEvents {
  peer: [PeerEvent];
  piece: [index: number];
  warning: [message: string];
  /** Every piece is verified and on disk. */
  complete: [];
  /** Once complete (seeding), the data on disk failed: a file changed, a read failed. */
  fault: [error: Error];
}
