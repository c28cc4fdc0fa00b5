/**
 * The BEP 10 extensions of one peer connection once the torrent's metadata is known:
 * - ut_metadata (BEP 9): answer requests for the info dictionary (`data` or `reject`), each
 *   piece at most twice per connection;
 * - ut_pex (BEP 11): take the peers it lists (at most 50 per list, one message a minute) and
 *   tell it ours the same way, the first time a minute after its extension handshake. Private torrents (BEP 27) never exchange peers.
 *
 * Messages arrive with the ids we gave in our handshake (LOCAL_EXTENSION_IDS) and leave with the
 * ids the peer gave in its own.
 */
import { logger } from '../log.js';
import type { PeerConnection } from '../peer/connection.js';
import type { PeerAddress } from '../tracker/types.js';
import {
  LOCAL_EXTENSION_IDS,
  UT_METADATA,
  UT_PEX,
  decodeExtendedHandshake,
  peerExtensionId,
  type ExtendedHandshake,
} from '../wire/extension.js';
import { MetadataServer, decodeUtMetadata, encodeUtMetadata } from '../wire/ut-metadata.js';
import {
  PexFlag,
  PexPeer,
  addedPeers,
  encodePex,
  type PexMessage,
  type PexPeerAddress,
} from '../wire/ut-pex.js';
import { hostOfBytes } from './own-addresses.js';

const log = logger('tdl:extensions');

export interface ExtensionOptions {
  /** The raw info dictionary, served to peers (null: not known yet). */
  info: Buffer | null;
  privateTorrent: boolean;
  /** Peers learnt by PEX. */
  onPeers: (peers: PexPeerAddress[]) => void;
  /** An address of ours (swarm/own-addresses), never taken from PEX. */
  isOwn: (p: PeerAddress) => boolean;
  /** The peer says it sees us at this address (its extension handshake's `yourip`). */
  seenAt?: (host: string) => void;
}

/**
 * BEP 11 `added.f` bits telling others about a peer we are connected to: it speaks MSE (the
 * connection went through it), it is a seed, it accepts connections (we dialled it).
 */
export function pexFlags(
  conn: Pick<PeerConnection, 'encryption' | 'direction' | 'bitfield'>,
): number {
  let f = 0;
  if (conn.encryption !== 'none') f |= PexFlag.encryption;
  if (conn.bitfield.isComplete()) f |= PexFlag.seed;
  if (conn.direction === 'out') f |= PexFlag.reachable;
  return f;
}

export class PeerExtensions {
  /** The peer's extension handshake, once received. */
  handshake: ExtendedHandshake | null = null;
  private readonly metadata = new MetadataServer();
  private pex: PexPeer | null = null;

  constructor(
    private readonly conn: PeerConnection,
    private readonly opts: ExtensionOptions,
  ) {}

  /** Where the peer listens: its address when we dialled it, else the port it announced. */
  get listenAddress(): PeerAddress | null {
    if (this.conn.direction === 'out') return { host: this.conn.host, port: this.conn.port };
    const p = this.handshake?.p;
    return p ? { host: this.conn.host, port: p } : null;
  }

  /** An extension message (id 0 is the handshake). Throws WireError on a malformed one. */
  onMessage(extId: number, payload: Buffer): void {
    if (extId === 0) {
      this.handshake = decodeExtendedHandshake(payload);
      const seen = this.handshake.yourip ? hostOfBytes(this.handshake.yourip) : null;
      if (seen !== null) this.opts.seenAt?.(seen);
      if (!this.opts.privateTorrent && peerExtensionId(this.handshake, UT_PEX) !== undefined) {
        const self = this.listenAddress ?? { host: this.conn.host, port: this.conn.port };
        // A repeated extension handshake (BEP 10 allows updates) keeps the PEX state.
        this.pex ??= new PexPeer(self, { connectedAt: Date.now() });
      }
      return;
    }
    if (extId === LOCAL_EXTENSION_IDS[UT_METADATA]) {
      const m = decodeUtMetadata(payload);
      if (m.type !== 'request') return;
      const id = this.handshake ? peerExtensionId(this.handshake, UT_METADATA) : undefined;
      if (id === undefined) return;
      const answer = this.metadata.answer(this.opts.info, m.piece);
      // A refusal is bounded like a `reject`: one that the peer does not read closes it.
      if (answer.type === 'reject' && this.conn.closedForFlooding()) return;
      this.conn.sendExtended(id, encodeUtMetadata(answer));
      return;
    }
    if (extId === LOCAL_EXTENSION_IDS[UT_PEX]) {
      if (!this.pex) return;
      const m: PexMessage | null = this.pex.receive(Date.now(), payload, this.opts.isOwn);
      if (m && m.added.length > 0) {
        log('%s: %d peers by PEX', this.conn.address, m.added.length);
        this.opts.onPeers(addedPeers(m));
      }
    }
  }

  /** Tell the peer about our connected peers, when a minute has passed and something changed. */
  sharePeers(now: number, connected: ReadonlyArray<PeerAddress & { flags?: number }>): void {
    if (!this.pex || !this.handshake) return;
    const id = peerExtensionId(this.handshake, UT_PEX);
    if (id === undefined) return;
    const m = this.pex.next(now, connected);
    if (m) this.conn.sendExtended(id, encodePex(m));
  }
}
