/** Shared types of the tracker layer (HTTP and UDP trackers, announcer). */

/** A peer as a tracker reports it. `host` is an IPv4 dotted quad or IPv6 text (no brackets). */
export interface PeerAddress {
  host: string;
  port: number;
}

export type AnnounceEvent = 'started' | 'completed' | 'stopped';

export interface AnnounceRequest {
  /** 20-byte SHA-1 info hash. */
  infoHash: Buffer;
  /** 20-byte peer id. */
  peerId: Buffer;
  /** TCP port we listen on (0 when not listening). */
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event?: AnnounceEvent;
  /** Peers wanted; trackers pick their own default when absent. */
  numWant?: number;
  /** Random 32-bit key identifying this client across IP changes. */
  key?: number;
  /** HTTP: the `tracker id` this tracker last gave, sent back as it came (`trackerid=`). */
  trackerId?: Buffer;
}

export interface AnnounceResponse {
  /** Seconds until the next regular announce. */
  interval: number;
  /** Seconds the tracker asks us to wait at least between announces, when it says so. */
  minInterval?: number;
  peers: PeerAddress[];
  warning?: string;
  /** What of the reply tdl could not use (its peers of another type), said as a warning. */
  malformed?: string;
  /** Seeders, when reported. */
  complete?: number;
  /** Leechers, when reported. */
  incomplete?: number;
  /** HTTP: `tracker id`, to send back on later announces to the same tracker. */
  trackerId?: Buffer;
}

export interface AnnounceOptions {
  signal?: AbortSignal;
  /** Bound on the whole announce (connect, retries, body). */
  timeoutMs?: number;
  /** Our side of the connection (`--bind`); the tracker's name resolves in its family. */
  localAddress?: string;
  /**
   * A reply listing more peers than tdl takes (MAX_PEERS_PER_REPLY) is read from this entry on
   * (see PeerCollector): the announcer moves it on at each answer.
   */
  peersFrom?: number;
}

/**
 * `host:port`, with IPv6 hosts in brackets (`[::1]:6881`): how tdl names a peer, or an address
 * of its own (`--bind`), everywhere.
 */
export function formatPeerAddress(p: { host: string; port: number | string }): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
