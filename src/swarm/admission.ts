/**
 * Taking a handshaken connection into the download (src/swarm/download.ts), ours or theirs:
 * which session of ours it doubles (`twinOf`), whether it may stay and why not (`refusal`), what
 * becomes of its address when it may not (`turnAway`), and the session it starts with
 * (`openSession`); and the connections a magnet link's metadata phase hands over
 * (`receiveHandoff`). The download wires each session's events and starts the connection.
 */
import type { PeerConnection } from '../peer/connection.js';
import type { PeerHandoff } from './download-api.js';
import type { PeerExtensions } from './extensions.js';
import type { Candidate, PeerOrigin, PeerPool } from './peer-pool.js';
import { PeerRequests } from './requests.js';
import { tdlKey } from './seed-sparing.js';
import type { Session } from './session.js';

/**
 * The session of this peer (its peer id) that makes `conn` a second connection to it: at the
 * same address in the other direction (both dialled at once), or, for one we dialled, at
 * another address (a peer reachable over IPv4 and IPv6, or on several interfaces, which a
 * tracker lists once per address). Peers that connect to us are not matched across
 * addresses: their ids are their word, and two peers behind one id would lose one.
 */
export function twinOf(conn: PeerConnection, sessions: Iterable<Session>): Session | null {
  const id = conn.remotePeerId;
  if (!id) return null;
  for (const s of sessions) {
    const c = s.conn;
    if (!c.remotePeerId?.equals(id)) continue;
    if (c.host === conn.host ? c.direction !== conn.direction : conn.direction === 'out') {
      return s;
    }
  }
  return null;
}

/**
 * `conn` and `twin` are one peer's two connections at one address, in the two directions: both
 * sides dialled at once. Both sides must keep the same one, whichever reached each first (each
 * refusing its later one closed both, and the two waited seconds to dial again): the one dialled
 * by the side whose peer id is the greater, the rule libtorrent applies. True when that is
 * `conn`, and `twin` is the one to close.
 */
export function replacesTwin(conn: PeerConnection, twin: Session, ownId: Buffer): boolean {
  const theirs = conn.remotePeerId;
  if (!theirs || twin.conn.host !== conn.host || twin.conn.direction === conn.direction) {
    return false;
  }
  const dialledNew = conn.direction === 'out' ? ownId : theirs;
  const dialledTwin = conn.direction === 'out' ? theirs : ownId;
  return Buffer.compare(dialledNew, dialledTwin) > 0;
}

export interface AdmissionFacts {
  /** The download has ended. */
  closed: boolean;
  /** A connection slot is free for it (src/swarm/slots.ts). */
  room: boolean;
  /** The peer (its address or its id) is banned. */
  banned: boolean;
  /** The session it doubles (`twinOf`), if any. */
  twin: Session | null;
}

/** Why `conn` may not stay, in the words its `dropped` event gives, or null when it may. */
export function refusal(conn: PeerConnection, f: AdmissionFacts): string | null {
  if (conn.state !== 'open') return 'connection closed';
  if (f.closed) return 'download ended';
  if (f.banned) return 'banned';
  if (!f.room) return 'no free peer slot';
  if (f.twin) {
    return f.twin.conn.host === conn.host
      ? 'already connected to this peer'
      : `already connected to this peer at ${f.twin.conn.address}`;
  }
  return null;
}

/** The pool's side of a connection refused for `reason` (the caller closes it). */
export function turnAway(
  pool: PeerPool,
  conn: PeerConnection,
  cand: Candidate,
  reason: string,
  twin: Session | null,
): void {
  // A banned peer found at another address: that address is banned too.
  if (reason === 'banned') cand.banned = true;
  if (twin && twin.conn.host !== conn.host) {
    // Another address of a peer we have (dual-stack, several interfaces): not dialled again
    // and again while that one lasts.
    pool.released(cand, false);
    return;
  }
  // At the same address `twinOf` matches the other direction only: an outgoing one's twin came
  // in.
  if (twin && conn.direction === 'out' && !twin.listening) {
    // We dialled where an incoming peer listens: the address stays held while it is here.
    twin.listening = cand;
    return;
  }
  pool.released(cand);
  // Turned away for lack of room, it has not had its chance yet.
  if (reason === 'no free peer slot' && cand.origin !== 'incoming') pool.untry(cand);
}

/** A new session for an admitted connection, `ext` its extension messages' handler. */
export function openSession(
  conn: PeerConnection,
  cand: Candidate,
  ext: PeerExtensions,
  now: number,
): Session {
  return {
    conn,
    cand,
    req: new PeerRequests(conn, now),
    ready: false,
    readyTimer: null,
    wanted: 0,
    connectedAt: now,
    chokedSince: now,
    lastHaveAt: now,
    blockBytesSeen: conn.blockBytesIn,
    tdlKey: tdlKey(conn.remotePeerId),
    listening: null,
    ext,
  };
}

export interface HandoffTarget {
  /** The torrent is private (BEP 27). */
  privateTorrent: boolean;
  pieceCount: number;
  /** Admit a connection, as one handshaken now (`extHandshake`: its peer's, received before). */
  admit(conn: PeerConnection, cand: Candidate, extHandshake: Buffer | null): void;
  /** A connection of the hand-over went before it was taken: dial another. */
  fill(): void;
}

/**
 * A magnet link's metadata phase hands its connections over (docs/DESIGN.md, "Magnet
 * hand-over"): every known address joins the pool (those connected or being dialled marked
 * busy, so that none is dialled twice), then each connection is admitted like a new one,
 * within `maxPeers`, and adopted: what it said before is replayed to the download's listeners.
 */
export function receiveHandoff(h: PeerHandoff, pool: PeerPool, to: HandoffTarget): void {
  // A private torrent (BEP 27) takes peers from its trackers only: what the metadata phase
  // learnt by PEX or the DHT, before it knew, is dropped here.
  const banned = (origin: PeerOrigin) =>
    to.privateTorrent && (origin === 'pex' || origin === 'dht');
  for (const c of h.candidates()) {
    if (banned(c.origin)) continue;
    if (c.busy) pool.reserve(c.peer, c.origin);
    else pool.add([c.peer], c.origin);
  }
  h.take(to.pieceCount, {
    peer: (conn, origin, extHandshake) => {
      if (banned(origin)) {
        conn.close('a private torrent takes no peers from PEX or the DHT');
        return;
      }
      const cand =
        origin === 'incoming'
          ? pool.incoming(conn.host, conn.port)
          : pool.reserve({ host: conn.host, port: conn.port }, origin);
      cand.busy = true;
      to.admit(conn, cand, extHandshake);
    },
    gone: (address) => {
      const c = pool.candidates.get(address);
      if (c) pool.released(c);
      to.fill();
    },
  });
}
