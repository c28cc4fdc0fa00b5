/**
 * Sparing the seeds (docs/DESIGN.md, "Sparing the seeds (a flock)"): which pieces to leave to
 * partial peers that can stand in for a seed, and which share of a seed's pieces this client
 * starts when other tdl peers download from the same seed. Pure rules over the peers' state;
 * the download applies them as picker hints.
 */
import type { PeerConnection } from '../peer/connection.js';
import { PEER_ID_PREFIX } from '../peer/peer-id.js';
import { peerIdKey, rendezvous, type PickHints } from './picker.js';
import type { PeerRequests } from './requests.js';

/** The start of tdl's peer ids (PEER_ID_PREFIX without the version): peers that share seeds. */
const CLIENT_TAG = Buffer.from(PEER_ID_PREFIX.slice(0, 3), 'latin1');
/** Such a peer that announced no piece for this long no longer gets a share of the seeds. */
export const PARTNER_IDLE_MS = 5_000;

/** What the rules read of one connected peer. */
export interface SparingPeer {
  conn: PeerConnection;
  req: PeerRequests;
  /** Swarm mode: the peer unchoked us once. */
  ready: boolean;
  /** When it last announced a piece (`have`), or connected. */
  lastHaveAt: number;
  /** `tdlKey` of its peer id, computed once when it connected. */
  tdlKey: number | null;
}

/** The rendezvous key of a tdl peer's id (peers of other clients do not share seeds): null. */
export function tdlKey(id: Uint8Array | null): number | null {
  if (!id || id.length < CLIENT_TAG.length) return null;
  for (let i = 0; i < CLIENT_TAG.length; i++) if (id[i] !== CLIENT_TAG[i]) return null;
  return peerIdKey(id);
}

/**
 * Can partial peer `q` stand in for seed `s`? It unchokes us and fetches at least half the
 * seed's rate.
 */
export function standsIn(q: SparingPeer, s: SparingPeer): boolean {
  return (
    q !== s &&
    q.ready &&
    !q.conn.peerChoking &&
    q.conn.state === 'open' &&
    !q.conn.bitfield.isComplete() &&
    2 * q.req.pipeline.rate >= s.req.pipeline.rate
  );
}

/**
 * For seed `s`: the pieces to leave to the partial peers that have them too and can stand in
 * for it, and the share of the pieces to start from it when other tdl peers (those that made
 * progress in the last PARTNER_IDLE_MS) download from it too. `ownKey` is `peerIdKey` of our
 * own peer id. No hints for a peer that is not a seed.
 */
export function sparingHints(
  s: SparingPeer,
  peers: Iterable<SparingPeer>,
  ownKey: number,
  now: number,
): PickHints {
  if (!s.conn.bitfield.isComplete()) return {};
  const hints: PickHints = {};
  const all = [...peers];
  const others = all.filter((q) => standsIn(q, s));
  if (others.length > 0) {
    hints.avoid = (index) => others.some((q) => q.conn.bitfield.has(index));
  }
  // We and the partial peers that follow the same rule (tdl) and make progress: each starts
  // from seeds the pieces it owns, and the others come from their owners.
  const keys = [ownKey];
  for (const q of all) {
    if (q === s || q.tdlKey === null || q.conn.state !== 'open') continue;
    if (q.conn.bitfield.isComplete() || now - q.lastHaveAt > PARTNER_IDLE_MS) continue;
    keys.push(q.tdlKey);
  }
  if (keys.length > 1) {
    hints.prefer = (index) => rendezvous(keys, index) === 0;
    hints.strict = s.req.inflight.size > 0;
  }
  return hints;
}
