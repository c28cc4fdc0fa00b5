/**
 * Fetching a torrent's metadata from peers (a magnet link, BEP 9).
 *
 *   peers ──► connect (pieces unknown: availability ignored) ──► extension handshakes
 *        ──► MetadataFetch: 16 KiB pieces from several peers, 2 in flight each ──► SHA-1 = info hash
 *
 * The peers come from the magnet's trackers, `x.pe` and `--peer`, and from PEX. A peer that
 * lies (a wrong size, pieces that hash wrong, out-of-range pieces) is dropped and the fetch goes on
 * from others. `run()` resolves with the exact info bytes and the addresses of the peers that
 * answered, which the download then dials again; it fails only at `timeoutMs` without progress.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { InterruptedError, NoPeersError } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import type { PeerAddress } from '../tracker/types.js';
import { Bitfield } from '../wire/bitfield.js';
import {
  LOCAL_EXTENSION_IDS,
  UT_METADATA,
  UT_PEX,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  localExtendedHandshake,
  peerExtensionId,
  type ExtendedHandshake,
} from '../wire/extension.js';
import { decodeUtMetadata, encodeUtMetadata } from '../wire/ut-metadata.js';
import { PexPeer } from '../wire/ut-pex.js';
import { CLIENT_VERSION, type PeerSource } from './download.js';
import { MetadataFetch } from './metadata-fetch.js';
import { PeerPool, type Candidate, type PeerOrigin } from './peer-pool.js';

const log = createDebug('tdl:metadata');

/** Peers connected at once while fetching metadata. */
export const METADATA_MAX_PEERS = 30;
const TICK_MS = 1_000;

export interface MetadataSwarmOptions {
  infoHash: Buffer;
  peerId: Buffer;
  peers: PeerAddress[];
  sources: { source: PeerSource; origin: PeerOrigin }[];
  /** Give up when no metadata piece arrives for this long. */
  timeoutMs: number;
  handshakeMs: number;
  signal?: AbortSignal;
}

export interface MetadataResult {
  info: Buffer;
  /** Peers that spoke to us, to be dialled again for the data. */
  peers: PeerAddress[];
}

export class MetadataSwarm extends EventEmitter<{ warning: [string]; progress: [] }> {
  private readonly fetch: MetadataFetch;
  private readonly pool: PeerPool;
  private readonly conns = new Map<
    PeerConnection,
    { ext: ExtendedHandshake | null; pex: PexPeer | null }
  >();
  private readonly answered = new Map<string, PeerAddress>();
  private lastProgressAt = Date.now();

  constructor(private readonly opts: MetadataSwarmOptions) {
    super();
    this.fetch = new MetadataFetch(opts.infoHash);
    this.pool = new PeerPool({
      infoHash: opts.infoHash,
      peerId: opts.peerId,
      pieceCount: 0,
      sequential: false,
      handshakeMs: opts.handshakeMs,
      metadataOnly: true,
    });
  }

  /** Peers connected, and those of them that have the metadata. */
  counts(): { connected: number; withMetadata: number; known: number } {
    return {
      connected: this.conns.size,
      withMetadata: this.fetch.peersWithMetadata(),
      known: this.pool.candidates.size,
    };
  }

  async run(): Promise<MetadataResult> {
    let ticker: NodeJS.Timeout | null = null;
    const detach: (() => void)[] = [];
    try {
      return await new Promise<MetadataResult>((resolve, reject) => {
        const onAbort = () => {
          const r = this.opts.signal?.reason;
          reject(r instanceof Error ? r : new InterruptedError('SIGINT'));
        };
        if (this.opts.signal?.aborted) return onAbort();
        this.opts.signal?.addEventListener('abort', onAbort, { once: true });
        detach.push(() => this.opts.signal?.removeEventListener('abort', onAbort));
        this.pool.on('connected', (conn, cand) => this.attach(conn, cand, resolve));
        for (const { source, origin } of this.opts.sources) {
          const onPeers = (peers: PeerAddress[]) => this.add(peers, origin);
          const onWarning = (m: string) => this.emit('warning', m);
          source.on('peers', onPeers);
          source.on('warning', onWarning);
          detach.push(() => {
            source.off('peers', onPeers);
            source.off('warning', onWarning);
          });
          source.start();
        }
        this.add(this.opts.peers, 'magnet');
        ticker = setInterval(() => {
          for (const c of this.conns.keys()) this.ask(c);
          this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
          if (this.conns.size + this.pool.connecting === 0) {
            for (const { source } of this.opts.sources) source.requestMore();
          }
          this.emit('progress');
          if (Date.now() - this.lastProgressAt > this.opts.timeoutMs) {
            const secs = Math.round(this.opts.timeoutMs / 1000);
            const c = this.counts();
            reject(
              new NoPeersError(
                `no metadata within ${secs}s (${c.known} peer addresses, ${c.withMetadata} with metadata)`,
              ),
            );
          }
        }, TICK_MS);
      });
    } finally {
      if (ticker) clearInterval(ticker);
      for (const d of detach) d();
      this.pool.close();
      for (const c of [...this.conns.keys()]) c.close('metadata complete');
    }
  }

  private add(peers: PeerAddress[], origin: PeerOrigin): void {
    this.pool.add(peers, origin);
    this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
  }

  private attach(conn: PeerConnection, cand: Candidate, done: (r: MetadataResult) => void): void {
    if (this.conns.size >= METADATA_MAX_PEERS) {
      conn.close('no free peer slot');
      this.pool.released(cand);
      return;
    }
    const state: { ext: ExtendedHandshake | null; pex: PexPeer | null } = { ext: null, pex: null };
    this.conns.set(conn, state);
    this.emit('progress');
    conn.on('close', (reason) => {
      this.conns.delete(conn);
      this.fetch.removePeer(conn.address);
      this.pool.released(cand);
      log('%s closed: %s', conn.address, reason);
      this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
    });
    conn.on('extended', (extId, payload) => {
      try {
        if (extId === 0) {
          state.ext = decodeExtendedHandshake(payload);
          this.answered.set(conn.address, { host: conn.host, port: conn.port });
          if (peerExtensionId(state.ext, UT_PEX) !== undefined) {
            state.pex = new PexPeer({ host: conn.host, port: conn.port });
          }
          const size = state.ext.metadataSize;
          if (peerExtensionId(state.ext, UT_METADATA) !== undefined && size !== undefined) {
            if (!this.fetch.addPeer(conn.address, size)) {
              conn.close(`unusable metadata size ${size}`);
              return;
            }
          }
          this.ask(conn);
          return;
        }
        if (extId === LOCAL_EXTENSION_IDS[UT_PEX] && state.pex) {
          const m = state.pex.receive(Date.now(), payload);
          if (m) this.add(m.added, 'pex');
          return;
        }
        if (extId !== LOCAL_EXTENSION_IDS[UT_METADATA]) return;
        const r = this.fetch.onMessage(conn.address, decodeUtMetadata(payload));
        if (r === 'done' && this.fetch.info) {
          log('metadata complete: %d bytes', this.fetch.info.length);
          done({ info: this.fetch.info, peers: [...this.answered.values()] });
          return;
        }
        if (typeof r === 'object') {
          conn.close(r.drop);
          return;
        }
        this.lastProgressAt = Date.now();
        this.emit('progress');
        this.ask(conn);
      } catch (e) {
        conn.close((e as Error).message);
      }
    });
    const ext = encodeExtendedHandshake(
      localExtendedHandshake({ privateTorrent: false, version: CLIENT_VERSION }),
    );
    conn.start(new Bitfield(0), ext);
  }

  /** Send this peer the metadata requests the fetch wants from it now. */
  private ask(conn: PeerConnection): void {
    const state = this.conns.get(conn);
    const id = state?.ext ? peerExtensionId(state.ext, UT_METADATA) : undefined;
    if (id === undefined) return;
    for (const piece of this.fetch.requestsFor(conn.address)) {
      conn.sendExtended(id, encodeUtMetadata({ type: 'request', piece }));
    }
  }
}
