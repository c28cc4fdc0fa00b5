/**
 * Peers other nodes announced to us (announce_peer), so we can answer get_peers. Bounded:
 * at most MAX_INFOHASHES info hashes and MAX_PEERS_PER_HASH peers each; an entry expires
 * PEER_TTL_MS after its last announce. When full, the oldest entry goes first.
 */
import type { PeerAddress } from '../tracker/types.js';
import { makeRoom } from '../bounded.js';

export const MAX_INFOHASHES = 1000;
export const MAX_PEERS_PER_HASH = 200;
export const PEER_TTL_MS = 30 * 60_000;
/** Peers returned in one get_peers answer (fits a datagram with room to spare). */
export const VALUES_PER_ANSWER = 50;

export class PeerStore {
  /** info hash hex → (host|port → {peer, expiry}); Map order = oldest first. */
  private readonly hashes = new Map<string, Map<string, { peer: PeerAddress; expires: number }>>();

  constructor(private readonly now: () => number = Date.now) {}

  add(infoHash: Buffer, peer: PeerAddress): void {
    const h = infoHash.toString('hex');
    let peers = this.hashes.get(h);
    if (!peers) {
      makeRoom(this.hashes, MAX_INFOHASHES);
      peers = new Map();
      this.hashes.set(h, peers);
    }
    const key = `${peer.host}|${peer.port}`;
    peers.delete(key);
    makeRoom(peers, MAX_PEERS_PER_HASH);
    peers.set(key, {
      peer: { host: peer.host, port: peer.port },
      expires: this.now() + PEER_TTL_MS,
    });
  }

  /** Up to `max` live peers for the info hash (a random selection when there are more). */
  get(infoHash: Buffer, max = VALUES_PER_ANSWER): PeerAddress[] {
    const h = infoHash.toString('hex');
    const peers = this.hashes.get(h);
    if (!peers) return [];
    const t = this.now();
    const live: PeerAddress[] = [];
    for (const [key, e] of peers) {
      if (e.expires <= t) peers.delete(key);
      else live.push(e.peer);
    }
    if (peers.size === 0) this.hashes.delete(h);
    for (let i = live.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    return live.slice(0, max);
  }

  infoHashCount(): number {
    return this.hashes.size;
  }
}
