/**
 * One connected peer as the download sees it (`Session`), and the rules that read the set of
 * sessions without changing it: the memory their pipelines need, which peer makes room for a
 * fresh address, which are too slow to fetch a stream's next pieces, when a connection is of no
 * use to either side, and what the choker is told about each peer. The download
 * (src/swarm/download.ts) acts on the answers.
 */
import type { PeerConnection } from '../peer/connection.js';
import { BLOCK_SIZE } from '../wire/messages.js';
import type { ChokerPeer } from './choker.js';
import type { PeerExtensions } from './extensions.js';
import type { Candidate } from './peer-pool.js';
import type { PeerRequests } from './requests.js';
import type { UploadService } from './upload.js';

export interface Session {
  conn: PeerConnection;
  cand: Candidate;
  req: PeerRequests;
  /** Single-peer mode: the probe passed. Swarm mode: the peer unchoked us once. */
  ready: boolean;
  readyTimer: NodeJS.Timeout | null;
  /** Pieces the peer has that we still need (kept up to date, no scans). */
  wanted: number;
  connectedAt: number;
  /** Since when the peer chokes us (0: it does not). */
  chokedSince: number;
  /** When it last announced a piece (`have`), or connected. */
  lastHaveAt: number;
  /**
   * Its block bytes (`conn.blockBytesIn`) at the last tick: more since, even of a block still
   * arriving, is data, and `--timeout` counts from it.
   */
  blockBytesSeen: number;
  /** The rendezvous key of a tdl peer's id (see seed-sparing.ts); null for other clients. */
  tdlKey: number | null;
  ext: PeerExtensions;
  /**
   * An incoming peer's listening address (its extension handshake's `p`), held busy in the pool
   * while it is connected so that a report of it is not dialled as another peer.
   */
  listening: Candidate | null;
}

/**
 * Memory for pieces being downloaded or waiting for the disk: the budget follows what the
 * peers' pipelines need (twice their queued bytes, plus a piece per peer and a few for the disk),
 * within these bounds.
 */
export const MIN_INFLIGHT_BYTES = 4 * 1024 * 1024;
export const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** The in-flight memory budget for ready peers with these pipeline depths (in blocks). */
export function inflightBudget(depths: readonly number[], pieceLength: number): number {
  const queued = depths.reduce((sum, d) => sum + d * BLOCK_SIZE, 0);
  const want = 2 * queued + (depths.length + 4) * pieceLength;
  return Math.max(MIN_INFLIGHT_BYTES, Math.min(MAX_INFLIGHT_BYTES, want));
}

/** The in-flight memory budget for these sessions (those ready count). */
export function memoryBudget(sessions: Iterable<Session>, pieceLength: number): number {
  const depths: number[] = [];
  for (const s of sessions) if (s.ready) depths.push(s.req.depth);
  return inflightBudget(depths, pieceLength);
}

/** With every slot taken and untried addresses waiting, a peer choking us this long makes room. */
export const REPLACE_AFTER_MS = 60_000;
/** ...and so does one that sent less than a block in the last 20 s, once connected this long. */
export const REPLACE_SLOW_AFTER_MS = 15_000;

/**
 * The peer to drop for a fresh address, if any: of those connected REPLACE_SLOW_AFTER_MS and
 * that we do not upload to, the one that has choked us longest (REPLACE_AFTER_MS at least), else
 * the one that sent least, under a block in the last 20 s while unchoking us.
 */
export function replacement(sessions: Iterable<Session>, now: number): Session | null {
  let worst: Session | null = null;
  let worstScore = Infinity;
  for (const s of sessions) {
    if (now - s.connectedAt < REPLACE_SLOW_AFTER_MS) continue;
    if (!s.conn.amChoking && s.conn.peerInterested) continue;
    const choking = s.chokedSince > 0 && now - s.chokedSince >= REPLACE_AFTER_MS;
    const recent = s.req.recent(now);
    const slow = s.chokedSince === 0 && recent < BLOCK_SIZE;
    if (!choking && !slow) continue;
    // Below every slow peer's score (bytes, never negative), the longest choke lowest.
    const score = choking ? -(now - s.chokedSince) : recent;
    if (score < worstScore) {
      worst = s;
      worstScore = score;
    }
  }
  return worst;
}

/**
 * With every slot taken and no data coming, one connection beyond the limit may show what it
 * has (src/swarm/slots.ts): once it has pieces we need, this peer makes way for it (null: none
 * of the others). First one with nothing we need and nothing in flight (one we do not upload to
 * before one we do), then one `replacement` would pick, else the one that sent least in the
 * last 20 s. Unlike `replacement`, a peer we upload to may go: a leecher holding a slot must not
 * shut out a seeder while we starve.
 */
export function makeWayFor(
  extra: Session,
  sessions: Iterable<Session>,
  now: number,
): Session | null {
  const others = [...sessions].filter((s) => s !== extra);
  const useless = others.filter((s) => s.wanted === 0 && s.req.inflight.size === 0);
  const notServed = useless.find((s) => s.conn.amChoking || !s.conn.peerInterested);
  if (notServed) return notServed;
  if (useless.length > 0) return useless[0]!;
  const worst = replacement(others, now);
  if (worst) return worst;
  let least: Session | null = null;
  for (const s of others) if (!least || s.req.recent(now) < least.req.recent(now)) least = s;
  return least;
}

/** With a priority window: a peer under 1/4 of the best rate, connected 3 s, starts none of it. */
export const WINDOW_SLOW_FACTOR = 4;
export const WINDOW_GRACE_MS = 3_000;

/**
 * The addresses of the ready peers, connected WINDOW_GRACE_MS or more, that fetch at under
 * 1/WINDOW_SLOW_FACTOR of the best rate: a stream would wait on the pieces they start.
 */
export function slowForWindow(sessions: readonly Session[], now: number): Set<string> {
  let best = 0;
  for (const s of sessions) if (s.ready) best = Math.max(best, s.req.pipeline.rate);
  const slow = new Set<string>();
  for (const s of sessions) {
    if (!s.ready || now - s.connectedAt < WINDOW_GRACE_MS) continue;
    if (s.req.pipeline.rate * WINDOW_SLOW_FACTOR < best) slow.add(s.conn.address);
  }
  return slow;
}

/**
 * Once our download is complete, a peer not interested in us for this long holds a connection
 * slot for nothing (we want nothing from anyone): it makes way for peers that want pieces.
 */
export const IDLE_WHILE_COMPLETE_MS = 60_000;

/**
 * Why this connection is of no use any more (a swarm, not the single-peer probe), or null:
 * neither side wants anything from the other and both are complete, or we are done and it is a
 * seed, or we are done and it has not been interested for IDLE_WHILE_COMPLETE_MS. A peer that
 * has shown nothing yet gets 10 s to send its bitfield.
 */
export function uselessReason(
  s: Session,
  now: number,
  weAreSeed: boolean,
  downloadComplete: boolean,
  idleMs = IDLE_WHILE_COMPLETE_MS,
): string | null {
  const conn = s.conn;
  if (s.wanted > 0 || conn.peerInterested || s.req.inflight.size > 0) return null;
  if (conn.bitfield.count === 0 && now - s.connectedAt < 10_000 && !downloadComplete) return null;
  if (downloadComplete && now - conn.notInterestedSince >= idleMs) {
    return 'not interested';
  }
  if (!conn.bitfield.isComplete()) return null;
  return weAreSeed || downloadComplete ? 'both complete' : null;
}

/** Peers we unchoke that are interested (those that hold an upload slot). */
export function unchokedCount(sessions: Iterable<Session>): number {
  let n = 0;
  for (const s of sessions) if (!s.conn.amChoking && s.conn.peerInterested) n++;
  return n;
}

/**
 * Peer `conn` changed its interest: must the upload slots be decided again now, rather than at
 * the choker's next round (`slots`: regular plus optimistic)? When it wants something while a
 * slot is free; when we left it unchoked as it lost interest and its slot went to another
 * meanwhile (one more than the slots until the round); and when one we unchoke loses interest
 * while another peer waits for a slot (only then: a peer flipping its interest several times a
 * second costs one decision, after which it is choked). No array is made: interest flips often.
 */
export function slotsMoveOn(
  conn: { peerInterested: boolean; amChoking: boolean },
  sessions: Iterable<Session>,
  slots: number,
): boolean {
  if (conn.peerInterested) {
    const served = unchokedCount(sessions);
    return conn.amChoking ? served < slots : served > slots;
  }
  if (conn.amChoking) return false;
  for (const s of sessions) if (s.conn.amChoking && s.conn.peerInterested) return true;
  return false;
}

/** What the choker weighs for each open connection. */
export function chokerView(
  sessions: Iterable<Session>,
  upload: UploadService,
  now: number,
): ChokerPeer[] {
  const peers: ChokerPeer[] = [];
  for (const s of sessions) {
    if (s.conn.state !== 'open') continue;
    peers.push({
      id: s.conn.address,
      interested: s.conn.peerInterested,
      connectedAt: s.connectedAt,
      downloadedRecent: s.req.recent(now),
      lastReceivedAt: s.req.recentBytes.lastAt,
      uploadedRecent: upload.recent(s.conn, now),
      uploadedSinceUnchoke: upload.sinceUnchoke(s.conn),
      unchoked: !s.conn.amChoking,
      notReading: upload.notReading(s.conn, now),
    });
  }
  return peers;
}
