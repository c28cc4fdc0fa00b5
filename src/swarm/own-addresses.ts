/**
 * Our own addresses, as other peers may list them: the listening port on every address that
 * reaches our listener. Trackers, the DHT and PEX often name the peer that asks (libtorrent's
 * PEX messages list the receiving peer itself), and a dial to one of these addresses is a
 * connection to ourselves, only recognised at the other end by its peer id, after a handshake
 * (or an MSE exchange) at both ends, and tried again like any address that closed.
 *
 * Which addresses are ours:
 * - bound to one address (`--bind`): that address;
 * - listening on all addresses: the loopback range (127.0.0.0/8, ::1), the unspecified
 *   addresses, and every address of this host's interfaces (read once, at start);
 * - either way, the addresses peers say they see us at (`yourip` in their extension handshake,
 *   BEP 10) when not an address of this host: behind a NAT that forwards our port unchanged,
 *   that public address reaches us. At most MAX_LEARNT are kept (a lying peer can only hide
 *   its lie's address, at our port, from us).
 */
import { canonicalHost, formatIPv6, isUnspecified } from '../tracker/compact.js';
import { interfaceAddresses } from '../tracker/local-addresses.js';
import type { PeerAddress } from '../tracker/types.js';

/** Most `yourip` addresses remembered. */
export const MAX_LEARNT = 16;

/** A 4- or 16-byte address (as `yourip` carries it) as text, or null for another length. */
export function hostOfBytes(b: Uint8Array): string | null {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) return formatIPv6(b);
  return null;
}

function isLoopbackOrUnspecified(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || isUnspecified(host);
}

export class OwnAddresses {
  /** Bound to this address only (canonical), or null: listening on all of them. */
  private readonly bound: string | null;
  private readonly local: Set<string>;
  private readonly learnt = new Set<string>();

  /**
   * `port`: where we listen; `host`: the listener's address (`0.0.0.0` or `::` when it listens
   * on all of them); `interfaces`: this host's addresses (default: read from the system).
   */
  constructor(
    readonly port: number,
    host: string,
    interfaces: readonly string[] = interfaceAddresses(),
  ) {
    const h = canonicalHost(host) ?? host;
    this.bound = isUnspecified(h) ? null : h;
    this.local = new Set(interfaces.map((a) => canonicalHost(a) ?? a));
  }

  /** Is `p` an address of ours (dialling it would reach our own listener)? */
  has(p: PeerAddress): boolean {
    if (p.port !== this.port || this.port === 0) return false;
    const h = canonicalHost(p.host);
    if (h === null) return false;
    if (this.learnt.has(h)) return true;
    if (this.bound !== null) return h === this.bound;
    return isLoopbackOrUnspecified(h) || this.local.has(h);
  }

  /** A peer says it sees us at `host` (its `yourip`): kept unless it is an address of this host. */
  learn(host: string): void {
    const h = canonicalHost(host);
    if (h === null || this.learnt.has(h) || this.learnt.size >= MAX_LEARNT) return;
    if (isLoopbackOrUnspecified(h) || this.local.has(h) || h === this.bound) return;
    this.learnt.add(h);
  }
}
