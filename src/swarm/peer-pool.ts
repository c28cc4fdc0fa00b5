/**
 * The peer pool: candidate addresses and the connection attempts made to them.
 *
 * In public swarms most listed addresses cannot be reached, and a connection attempt to them
 * hangs until its timeout. So attempts do not queue behind dead addresses:
 * - many attempts are in flight at once (MAX_CONNECTING), independent of the peer limit;
 * - the first attempt has a short connect timeout, doubled on each retry;
 * - untried addresses always go before retries, and a retry waits RETRY_DELAY_MS × attempts;
 *   an address turned away for want of a free slot gets its attempt back, but goes after those
 *   never dialled, and the longest unasked first.
 *
 * Encryption (`--encryption`, see EncryptionMode): an address is dialled with the mode's first
 * kind of handshake (plain under `allow`, MSE otherwise; MSE too for a peer that PEX flags as
 * speaking encryption). A peer that hangs up on a plain handshake, or fails an MSE one, is
 * dialled again at once with the other kind (never under `require`), which is kept for it if it
 * works; when it fails too, the next attempt starts again with the first kind. That second dial
 * is the same attempt, not a retry.
 *
 * A handshaken connection is handed to the orchestrator, which takes it or closes it (no free
 * slot). The pool never decides on its own to drop a connected peer.
 */
import { EventEmitter } from 'node:events';
import { NoPeersError } from '../errors.js';
import { logger } from '../log.js';
import {
  PeerConnection,
  mseOffer,
  type EncryptionMode,
  type PeerTimeouts,
} from '../peer/connection.js';
import { formatPeerAddress, type PeerAddress } from '../tracker/types.js';
import { familyOfIp, ipFamily, isNeverAPeer } from '../tracker/compact.js';
import type { PexHints } from '../wire/ut-pex.js';
import { makeRoom } from '../bounded.js';

const log = logger('tdl:pool');

export type PeerOrigin = 'tracker' | 'dht' | 'pex' | 'magnet' | 'cli' | 'incoming';

/** Connection attempts in flight at once (sequential mode: one). */
export const MAX_CONNECTING = 48;
/** Connect timeout of a first attempt; each retry doubles it, up to MAX_CONNECT_TIMEOUT_MS. */
export const FIRST_CONNECT_TIMEOUT_MS = 3_000;
export const MAX_CONNECT_TIMEOUT_MS = 20_000;
/** A failed address is tried again after this long times its attempts, at most MAX_ATTEMPTS times. */
export const RETRY_DELAY_MS = 3_000;
export const MAX_ATTEMPTS = 3;
/** Most candidate addresses remembered. */
export const MAX_CANDIDATES = 2_000;
/** Banned peers remembered by host and peer id (see `ban`); the oldest is forgotten first. */
export const MAX_BANNED_IDS = 1_000;
/**
 * Peers banned at one host (under different peer ids or ports) after which no incoming
 * connection from that host is taken for HOST_BLOCK_MS after the last ban. A peer that sends
 * bad pieces and dials in again at once under a new peer id got in again and again: 20 times
 * the torrent's size wasted beside a good peer. A NAT's other peers wait with it, as libtorrent
 * bans the address outright.
 */
export const HOST_BANS_TO_BLOCK = 3;
export const HOST_BLOCK_MS = 10 * 60_000;

/** Incoming connections kept from one address: hundreds from one host cannot fill `maxPeers`. */
export const MAX_INCOMING_PER_ADDRESS = 8;

/** A peer the magnet's metadata phase knows of, handed to the download (busy: connected). */
export interface HandoffCandidate {
  peer: PeerAddress & PexHints;
  origin: PeerOrigin;
  busy: boolean;
}

/**
 * The peers at IP addresses of the other family than `localAddress` (`--bind`), which no
 * connection from it can reach (the pool skips them); a name resolves in its family.
 */
export function farPeers(
  peers: readonly PeerAddress[],
  localAddress: string | undefined,
): PeerAddress[] {
  if (localAddress === undefined) return [];
  const ours = familyOfIp(localAddress);
  return peers.filter((p) => isFar(p, ours));
}

/** A peer at an IP address of the other family than `ours` (0: any); a name resolves in ours. */
function isFar(p: PeerAddress, ours: 0 | 4 | 6): boolean {
  const family = ipFamily(p.host);
  return ours !== 0 && family !== 0 && family !== ours;
}

/** The first three of `far`, then how many more: `[::1]:9, [::2]:9 and 5 more`. */
export function namePeers(far: readonly PeerAddress[]): string {
  const shown = far.slice(0, 3).map(formatPeerAddress).join(', ');
  return far.length > 3 ? `${shown} and ${far.length - 3} more` : shown;
}

/** Every peer given is one of `far` and nothing else brings any: exit 4 at once, naming them. */
export function farPeersError(far: readonly PeerAddress[], localAddress: string): NoPeersError {
  return new NoPeersError(
    `every peer given is of the other address family than --bind ${localAddress} ` +
      `(IPv4 and IPv6 do not mix): ${namePeers(far)}; give peers of its family with --peer HOST:PORT`,
  );
}

/** A candidate as the metadata phase hands it to the download: what PEX said of it kept. */
export function handoffOf(c: Candidate): HandoffCandidate {
  return {
    peer: {
      host: c.host,
      port: c.port,
      prefersEncryption: c.prefersMse,
      seed: c.seed,
      reachable: c.reachable,
    },
    origin: c.origin,
    busy: c.busy,
  };
}

export interface Candidate {
  host: string;
  port: number;
  address: string;
  origin: PeerOrigin;
  attempts: number;
  notBefore: number;
  /** When it was last dialled (0: never): among equal attempts, the longest unasked goes first. */
  dialledAt: number;
  banned: boolean;
  /** Connecting, or connected. */
  busy: boolean;
  /** Dialled with the other kind of handshake than the mode's first (see the header). */
  flipped: boolean;
  /** Why the mode's first kind failed, in the attempt dialled again with the other kind. */
  firstKindFailure: string;
  /** PEX said it speaks encryption: under `allow`, MSE is its first kind of handshake. */
  prefersMse: boolean;
  /** PEX said it is a seed: not dialled once we want nothing more (PoolOptions.done). */
  seed: boolean;
  /** PEX said its sender dialled it (it accepts connections): tried before others. */
  reachable: boolean;
}

export interface PoolOptions {
  infoHash: Buffer;
  peerId: Buffer;
  pieceCount: number;
  sequential: boolean;
  timeouts?: Partial<PeerTimeouts>;
  /** Handshake timeout (also the probe's). */
  handshakeMs: number;
  /** Connections that only fetch metadata (a magnet link: the pieces are unknown). */
  metadataOnly?: boolean;
  /** Our own addresses (swarm/own-addresses): never taken as candidates, never dialled. */
  isOwn?: (p: PeerAddress) => boolean;
  /**
   * Connect from this address (`--bind`): peers at addresses of the other family (IPv6 for an
   * IPv4 address) cannot be reached from it and are not taken.
   */
  localAddress?: string;
  encryption?: EncryptionMode;
  /**
   * We want nothing more (the download is complete): a candidate PEX flags as a seed is not
   * dialled, since both sides would drop the connection as useless.
   */
  done?: () => boolean;
}

/** tdl's own addresses kept to be counted in messages (see PeerPool.ownSkipped). */
const MAX_OWN_SKIPPED = 16;

export interface PoolEvents {
  connecting: [address: string];
  /** Connected and handshaken: the owner must take the connection or close it. */
  connected: [conn: PeerConnection, cand: Candidate];
  failed: [address: string, reason: string];
  /** A connection attempt still running when the pool closed. */
  abandoned: [address: string];
}

export class PeerPool extends EventEmitter<PoolEvents> {
  readonly candidates = new Map<string, Candidate>();
  /** Banned peers by host and peer id (see `ban`). */
  private readonly bannedIds = new Set<string>();
  /** Bans per host, and the time of the last (see HOST_BANS_TO_BLOCK). */
  private readonly hostBans = new Map<string, { count: number; at: number }>();
  private readonly attempts = new Set<PeerConnection>();
  private closed = false;

  /** The family peers must be in to be reached from `localAddress` (0: any). */
  private readonly family: 0 | 4 | 6;
  /** Addresses left out for being of the other family than `localAddress` (reports counted). */
  otherFamily = 0;
  /** Addresses left out for being tdl's own (a few kept, to be counted in messages). */
  readonly ownSkipped = new Set<string>();

  constructor(private readonly opts: PoolOptions) {
    super();
    this.family = opts.localAddress === undefined ? 0 : familyOfIp(opts.localAddress);
  }

  get connecting(): number {
    return this.attempts.size;
  }

  /**
   * Add addresses (duplicates, banned ones, port 0 and addresses no peer can have, isNeverAPeer,
   * ignored); returns how many are new.
   */
  add(peers: readonly (PeerAddress & PexHints)[], origin: PeerOrigin): number {
    let added = 0;
    for (const p of peers) {
      if (this.candidates.size >= MAX_CANDIDATES) break;
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) continue;
      // Multicast and the like, from a source (PEX, a tracker, the DHT); a --peer is the user's.
      if (origin !== 'cli' && isNeverAPeer(p.host)) continue;
      const address = formatPeerAddress(p);
      if (this.opts.isOwn?.(p)) {
        // Reported again (each announce): counted once, and no other forgotten for it.
        if (!this.ownSkipped.has(address)) {
          makeRoom(this.ownSkipped, MAX_OWN_SKIPPED);
          this.ownSkipped.add(address);
        }
        continue;
      }
      // An address of the other family is unreachable (see farPeers).
      if (isFar(p, this.family)) {
        this.otherFamily++;
        continue;
      }
      const known = this.candidates.get(address);
      if (known) {
        takeHints(known, p);
        // An address an incoming peer came from (or said it listens at) is now reported by a
        // source: it is one to dial like theirs.
        if (known.origin === 'incoming') known.origin = origin;
        // A fresh report gives a failed address another chance.
        if (!known.banned && !known.busy && known.attempts >= MAX_ATTEMPTS) {
          known.attempts = MAX_ATTEMPTS - 1;
        }
        continue;
      }
      this.candidates.set(address, newCandidate(p.host, p.port, address, origin, 0, p));
      added++;
    }
    if (added > 0) log('%d new %s addresses (%d known)', added, origin, this.candidates.size);
    return added;
  }

  /** Untried candidates (a reason to make room for them). */
  untried(): number {
    let n = 0;
    for (const c of this.candidates.values()) if (!c.busy && !c.banned && c.attempts === 0) n++;
    return n;
  }

  /** Candidates that may still be tried now or later. */
  hopeful(): number {
    let n = 0;
    for (const c of this.candidates.values())
      if (!c.banned && (c.busy || c.attempts < MAX_ATTEMPTS)) n++;
    return n;
  }

  /** Candidates not connected or being dialled that may still be tried now or later. */
  dialable(): number {
    let n = 0;
    for (const c of this.candidates.values())
      if (!c.banned && !c.busy && c.attempts < MAX_ATTEMPTS) n++;
    return n;
  }

  /** Start attempts while fewer than `room` peers are connected or connecting. */
  fill(connected: number, maxPeers: number): void {
    if (this.closed) return;
    const limit = this.opts.sequential ? 1 : MAX_CONNECTING;
    // Attempts may exceed the free slots (most fail), but not without bound.
    const want = Math.min(limit, this.opts.sequential ? maxPeers - connected : 2 * maxPeers);
    if (this.attempts.size >= want || connected >= maxPeers) return;
    const now = Date.now();
    const done = this.opts.done?.() === true;
    const ready: Candidate[] = [];
    for (const c of this.candidates.values()) {
      if (c.busy || c.banned || c.attempts >= MAX_ATTEMPTS || c.notBefore > now) continue;
      if (done && c.seed) continue;
      // Known before we knew the address for ours (a peer's `yourip` came later).
      if (this.opts.isOwn?.(c)) continue;
      ready.push(c);
    }
    // The fewest attempts first; among equals, those never dialled (then the longest unasked:
    // an address turned away for lack of room gets its attempt back, and went first again and
    // again, while later addresses were never dialled), then those known to accept connections.
    ready.sort(
      (a, b) =>
        a.attempts - b.attempts ||
        a.dialledAt - b.dialledAt ||
        Number(b.reachable) - Number(a.reachable),
    );
    for (const c of ready) {
      if (this.attempts.size >= want) break;
      this.attempt(c);
    }
  }

  /** Dial with MSE (else the plain handshake)? */
  private usesMse(c: Candidate): boolean {
    const mode = this.opts.encryption ?? 'allow';
    return mode === 'require' || (mode === 'prefer' || c.prefersMse) !== c.flipped;
  }

  /** `again`: the same attempt with the other handshake (not announced as a new one). */
  private attempt(c: Candidate, again = false): void {
    c.busy = true;
    c.attempts++;
    if (!again) c.dialledAt = Date.now();
    const mse = this.usesMse(c);
    const connectMs = Math.min(
      MAX_CONNECT_TIMEOUT_MS,
      (this.opts.timeouts?.connectMs ?? FIRST_CONNECT_TIMEOUT_MS) * 2 ** (c.attempts - 1),
    );
    const conn = new PeerConnection({
      host: c.host,
      port: c.port,
      infoHash: this.opts.infoHash,
      peerId: this.opts.peerId,
      pieceCount: this.opts.pieceCount,
      timeouts: { ...this.opts.timeouts, connectMs, handshakeMs: this.opts.handshakeMs },
      metadataOnly: this.opts.metadataOnly,
      mse: mse ? mseOffer(this.opts.encryption ?? 'allow') : undefined,
      localAddress: this.opts.localAddress,
    });
    this.attempts.add(conn);
    if (!again) this.emit('connecting', c.address);
    conn.connect().then(
      () => {
        this.attempts.delete(conn);
        if (this.closed) {
          conn.close('run ended');
          c.busy = false;
          return;
        }
        this.emit('connected', conn, c);
      },
      (e: unknown) => {
        this.attempts.delete(conn);
        const why = (e as Error).message;
        const kind = mse ? 'encrypted' : 'plain';
        if (
          !this.closed &&
          !c.flipped &&
          this.opts.encryption !== 'require' &&
          (mse ? conn.mseFailed : conn.hungUpEarly)
        ) {
          log('%s %s: trying the %s handshake', c.address, why, mse ? 'plain' : 'encrypted');
          c.flipped = true;
          c.firstKindFailure = `${kind} handshake: ${why}`;
          c.attempts--;
          this.attempt(c, true);
          return;
        }
        // What is said names each kind of handshake tried, and under `require` why no plain
        // one was: a user who asked for it learns that it is what kept this peer away.
        let reason = why;
        if (again) reason = `${c.firstKindFailure}; ${kind} handshake: ${why}`;
        else if (mse && conn.mseFailed && this.opts.encryption === 'require') {
          reason =
            `${why} in the encrypted handshake (the peer may not take encryption; ` +
            '--encryption require tries no plain one)';
        }
        // Both kinds failed in this attempt: the next starts again with the mode's first. One
        // refusal may have been passing (a peer turning away a second connection from one
        // address, as Transmission does), and the kind tried last, kept, may be one the peer
        // never takes (Transmission that tolerates encryption hangs up on every MSE offer).
        if (again) c.flipped = false;
        this.released(c);
        if (!this.closed) this.emit('failed', c.address, reason);
      },
    );
  }

  /** The connection to this candidate ended (or failed): it may be tried again later. */
  released(c: Candidate, useful = true): void {
    c.busy = false;
    c.notBefore = Date.now() + RETRY_DELAY_MS * Math.max(1, c.attempts);
    // One that never became useful has had its chance.
    if (!useful) c.attempts = Math.max(c.attempts, MAX_ATTEMPTS - 1);
  }

  /** The attempt does not count: the peer answered but there was no room for it. */
  untry(c: Candidate): void {
    c.attempts = Math.max(0, c.attempts - 1);
    c.notBefore = 0;
  }

  /**
   * Everything failed and no new address is coming: give each a last try (or each from the sources `only` names).
   * Not the addresses incoming peers came from or named and no source reported: a peer's
   * outgoing port is not where it listens (dialled again and again, that looked like a port
   * scan).
   */
  retryAll(only?: readonly PeerOrigin[]): void {
    for (const c of this.candidates.values()) {
      if (c.banned || c.origin === 'incoming' || (only && !only.includes(c.origin))) continue;
      c.attempts = MAX_ATTEMPTS - 1;
    }
  }

  /**
   * An address we are connected to already, or that another owner is dialling (a magnet's
   * metadata phase hands its connections over): remembered as tried once, and busy so that
   * fill() does not dial it too. `released()` frees it like any attempt.
   */
  reserve(peer: PeerAddress & PexHints, origin: PeerOrigin): Candidate {
    const address = formatPeerAddress(peer);
    let c = this.candidates.get(address);
    if (!c) {
      c = newCandidate(peer.host, peer.port, address, origin, 0, peer);
      if (this.candidates.size < MAX_CANDIDATES) this.candidates.set(address, c);
    } else takeHints(c, peer);
    c.busy = true;
    c.attempts = Math.max(1, c.attempts);
    return c;
  }

  /**
   * Where a connected incoming peer listens, held busy while it is here so that a report of it is
   * not dialled as another peer; null when that address is busy already (we are dialling it).
   * Released like any attempt. An address only that connection told us gets an incoming
   * candidate's attempts: it is not dialled after the peer leaves unless a tracker or PEX
   * reports it (see add()).
   */
  holdListening(peer: PeerAddress): Candidate | null {
    const c = this.incoming(peer.host, peer.port);
    if (c.busy) return null;
    c.busy = true;
    return c;
  }

  /** The remembered entry for an incoming peer (created on first sight). */
  incoming(host: string, port: number): Candidate {
    const address = formatPeerAddress({ host, port });
    let c = this.candidates.get(address);
    if (!c) {
      c = newCandidate(host, port, address, 'incoming', MAX_ATTEMPTS);
      if (this.candidates.size < MAX_CANDIDATES) this.candidates.set(address, c);
    }
    return c;
  }

  /**
   * Ban a peer (it sent bad pieces): its candidate, and its peer id at its host, so that it is
   * refused when it comes back from another port (an incoming peer's port changes with each
   * connection, and one that does not say where it listens has no other address to ban).
   */
  ban(c: Candidate, conn: { host: string; remotePeerId: Buffer | null }): void {
    c.banned = true;
    const now = Date.now();
    const seen = this.hostBans.get(conn.host);
    if (seen) {
      // Bans long ago are forgotten: a new count starts.
      seen.count = now - seen.at > HOST_BLOCK_MS ? 1 : seen.count + 1;
      seen.at = now;
    } else {
      makeRoom(this.hostBans, MAX_BANNED_IDS);
      this.hostBans.set(conn.host, { count: 1, at: now });
    }
    if (!conn.remotePeerId) return;
    makeRoom(this.bannedIds, MAX_BANNED_IDS);
    this.bannedIds.add(bannedKey(conn.host, conn.remotePeerId));
  }

  /** Is this handshaken connection's peer (host and peer id) banned? */
  isBannedPeer(conn: { host: string; remotePeerId: Buffer | null }): boolean {
    return (
      conn.remotePeerId !== null && this.bannedIds.has(bannedKey(conn.host, conn.remotePeerId))
    );
  }

  /**
   * The candidate of an incoming connection, marked busy; or null once the connection is closed:
   * MAX_INCOMING_PER_ADDRESS already connected from its address (among `live`), banned, or from
   * a host where HOST_BANS_TO_BLOCK peers were banned lately.
   */
  acceptIncoming(conn: PeerConnection, live: Iterable<PeerConnection>): Candidate | null {
    let fromHost = 0;
    for (const c of live) if (c.direction === 'in' && c.host === conn.host) fromHost++;
    if (fromHost >= MAX_INCOMING_PER_ADDRESS) {
      conn.close('too many connections from this address');
      return null;
    }
    const bans = this.hostBans.get(conn.host);
    if (bans && bans.count >= HOST_BANS_TO_BLOCK && Date.now() - bans.at < HOST_BLOCK_MS) {
      conn.close(`its address sent bad pieces under ${bans.count} peer ids`);
      return null;
    }
    const cand = this.incoming(conn.host, conn.port);
    if (cand.banned) {
      conn.close('banned');
      return null;
    }
    cand.busy = true;
    return cand;
  }

  close(): void {
    this.closed = true;
    for (const conn of [...this.attempts]) {
      // Said, so that every `connecting` a reader saw is ended by a `dropped`.
      this.emit('abandoned', conn.address);
      conn.close('run ended');
    }
    this.attempts.clear();
  }
}

function bannedKey(host: string, peerId: Buffer): string {
  return `${host} ${peerId.toString('hex')}`;
}

function newCandidate(
  host: string,
  port: number,
  address: string,
  origin: PeerOrigin,
  attempts: number,
  hints: PexHints = {},
): Candidate {
  const c: Candidate = {
    host,
    port,
    address,
    origin,
    attempts,
    notBefore: 0,
    dialledAt: 0,
    banned: false,
    busy: false,
    flipped: false,
    firstKindFailure: '',
    prefersMse: false,
    seed: false,
    reachable: false,
  };
  takeHints(c, hints);
  return c;
}

/**
 * What a report says of a candidate, over what an earlier one said: PEX's latest flags win (a
 * leecher becomes a seed); a report without them (a tracker's) changes nothing.
 */
function takeHints(c: Candidate, hints: PexHints): void {
  if (hints.prefersEncryption !== undefined) c.prefersMse = hints.prefersEncryption;
  if (hints.seed !== undefined) c.seed = hints.seed;
  if (hints.reachable !== undefined) c.reachable = hints.reachable;
}
