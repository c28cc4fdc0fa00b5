/**
 * This host's own addresses, as the announcer and the peer pool need them: the interfaces' (to
 * recognise ourselves in a tracker's or a peer's list) and the one `--bind` makes outgoing
 * connections leave from. Reads the system's interface list; the address text helpers it uses
 * are the pure ones of compact.ts.
 */
import { networkInterfaces } from 'node:os';
import { canonicalHost, isUnspecified } from './compact.js';

/** Addresses of this host's interfaces (canonical), loopback ones included. */
export function interfaceAddresses(): string[] {
  const out: string[] = [];
  try {
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        const h = canonicalHost(a.address);
        if (h) out.push(h);
      }
    }
  } catch {
    // No interface list (a sandbox without it): the loopback range still counts.
  }
  return out;
}

/**
 * The address outgoing connections leave from for `--bind` (peers, trackers, web seeds, a
 * .torrent URL): the bound address, or none when there is no `--bind` or it is the unspecified
 * one (`0.0.0.0`, `::`: any address).
 */
export function outgoingAddress(bind: string | undefined): string | undefined {
  return bind === undefined || isUnspecified(bind) ? undefined : bind;
}
