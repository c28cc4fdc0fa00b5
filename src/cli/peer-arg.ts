import { isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../errors.js';
import { canonicalPeerIPv6 } from '../tracker/compact.js';
import type { PeerAddress } from '../tracker/types.js';

/** Parse `host:port`, `[v6]:port`; `option` names the option in the error. */
export function parsePeer(s: string, option = '--peer'): PeerAddress {
  const bracketed = /^\[([^\]]*)\]:(\d+)$/.exec(s);
  if (bracketed && !isIPv6(bracketed[1]!)) {
    throw new UsageError(
      `${option} ${s}: brackets hold an IPv6 address (${isIPv4(bracketed[1]!) ? `write ${bracketed[1]}:${bracketed[2]}` : 'like [::1]:6881'})`,
    );
  }
  // A host name or IPv4 address: no spaces, slashes or brackets (a URL is not an address).
  const m = bracketed ?? /^([^:[\]\s/\\]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    // `::1:6881`: the port cannot be told from the address without brackets.
    const v6 = !s.startsWith('[') && (s.match(/:/g) ?? []).length > 1;
    const hint = v6 ? ' (an IPv6 address goes in brackets: [::1]:6881)' : '';
    throw new UsageError(`${option} ${s}: expected HOST:PORT with a port from 1 to 65535${hint}`);
  }
  if (bracketed) linkLocalZone(m[1]!, s, option);
  return { host: bracketed ? canonicalPeerIPv6(m[1]!) : m[1]!, port };
}

/**
 * A link-local address (fe80::/10) is reached through one interface, which its zone names
 * (`fe80::1%eth0`): without one, or with the interface's number (which Node cannot use), every
 * connection fails (EINVAL), so it is refused here rather than tried until --timeout.
 */
function linkLocalZone(ip: string, s: string, option: string): void {
  if (!/^fe[89ab][0-9a-f]:/i.test(ip)) return;
  const zone = ip.includes('%') ? ip.slice(ip.indexOf('%') + 1) : '';
  if (zone !== '' && !/^\d+$/.test(zone)) return;
  throw new UsageError(
    `${option} ${s}: a link-local address needs the name of its interface, as in [fe80::1%eth0]:6881`,
  );
}

/**
 * `--dht-bootstrap` values, checked when the command starts (UsageError naming the option). The
 * DHT is IPv4 only: an IPv6 address, which it would skip, is refused here.
 */
export function parseBootstrap(values: readonly string[] | undefined): PeerAddress[] {
  return (values ?? []).map((v) => {
    const node = parsePeer(v, '--dht-bootstrap');
    if (node.host.includes(':')) {
      throw new UsageError(
        `--dht-bootstrap ${v}: the DHT is IPv4 only; give an IPv4 address or a host name`,
      );
    }
    return node;
  });
}
