/**
 * Peer-list and interval helpers shared by the HTTP and UDP tracker parsers, and the address
 * text helpers (family, canonical spelling, the unspecified address) the rest shares. Pure
 * functions: this host's own addresses are in local-addresses.ts.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { PeerAddress } from './types.js';

/** At most this many peers are taken from one tracker reply (the rest are ignored). */
export const MAX_PEERS_PER_REPLY = 500;

/** Interval used when a tracker does not send one (seconds). */
export const DEFAULT_ANNOUNCE_INTERVAL_S = 1800;
/**
 * Tracker intervals are clamped to [MIN_ANNOUNCE_INTERVAL_S, MAX_ANNOUNCE_INTERVAL_S] by the
 * parsers (the announcer applies its own, larger, floor before re-announcing).
 */
export const MIN_ANNOUNCE_INTERVAL_S = 1;
export const MAX_ANNOUNCE_INTERVAL_S = 24 * 3600;

/** Clamps a tracker-supplied interval (seconds) to the sane range, or the default if unusable. */
export function clampInterval(v: number | undefined): number {
  if (v === undefined || !Number.isFinite(v)) return DEFAULT_ANNOUNCE_INTERVAL_S;
  return Math.min(MAX_ANNOUNCE_INTERVAL_S, Math.max(MIN_ANNOUNCE_INTERVAL_S, Math.trunc(v)));
}

/**
 * `net.isIP(text)` (4, 6 or 0) without compiling Node's IPv6 pattern for text that cannot be
 * IPv6: that pattern is a large regular expression whose first use costs 20-40 ms of CPU (over
 * 100 ms on a loaded machine), and `isIP` tries it on every string that is not IPv4, host names
 * included (docs/DESIGN.md, "Start-up"). IPv6 text always holds a colon; host names never do.
 */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (isIPv4(text)) return 4;
  return text.includes(':') && isIPv6(text) ? 6 : 0;
}

/** The family of an IP address already known to be valid (IPv6 text always holds a colon). */
export function familyOfIp(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/** Formats 16 bytes as RFC 5952 IPv6 text; IPv4-mapped addresses become dotted IPv4. */
export function formatIPv6(b: Uint8Array, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[offset + 2 * i]! << 8) | b[offset + 2 * i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${b[offset + 12]}.${b[offset + 13]}.${b[offset + 14]}.${b[offset + 15]}`;
  }
  // Longest run (length >= 2) of zero groups, first one on ties, becomes "::".
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function formatIPv4(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** The unspecified ("any") address, `0.0.0.0` or `::`: never worth dialling. */
export function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * An address no peer can listen at: unspecified, IPv4 0/8, multicast, reserved and broadcast
 * (224.0.0.0 and up), IPv6 multicast (ff00::/8). Dialling one is never useful, and a list of
 * them (PEX, a tracker, the DHT) would only spend connection attempts.
 */
export function isNeverAPeer(host: string): boolean {
  if (isUnspecified(host)) return true;
  const v4 = /^(\d{1,3})\./.exec(host);
  if (v4) {
    const first = Number(v4[1]);
    return first === 0 || first >= 224;
  }
  return /^ff[0-9a-f]{0,2}:/i.test(host);
}

/**
 * Collects peers for one reply: drops port 0 and unspecified addresses, removes duplicates,
 * stops at MAX_PEERS_PER_REPLY (or `max`). A list longer than that is read from its entry
 * `start` on (modulo its length), wrapping around: each announce of a tracker that sends more
 * than tdl takes starts where the last one stopped, so a peer listed after the first `max` is
 * reached too.
 */
export class PeerCollector {
  readonly peers: PeerAddress[] = [];
  private readonly seen = new Set<string>();
  constructor(
    private readonly max = MAX_PEERS_PER_REPLY,
    private readonly start = 0,
  ) {}

  /** The order in which the `n` entries of a list are read (see above). */
  *order(n: number): Generator<number> {
    const first = n > this.max && Number.isSafeInteger(this.start) ? this.start % n : 0;
    for (let k = 0; k < n && !this.full; k++) yield (first + k) % n;
  }

  get full(): boolean {
    return this.peers.length >= this.max;
  }

  add(host: string, port: number): void {
    if (this.full) return;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return;
    if (isUnspecified(host)) return;
    const key = `${host}|${port}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.peers.push({ host, port });
  }

  /**
   * Compact IPv4 list: 6 bytes per peer (address, port big-endian). A trailing partial entry
   * (length not a multiple of 6) is ignored: the complete entries before it are kept.
   */
  addCompact4(b: Uint8Array): void {
    for (const i of this.order(Math.floor(b.length / 6))) {
      const o = i * 6;
      this.add(formatIPv4(b, o), (b[o + 4]! << 8) | b[o + 5]!);
    }
  }

  /** Compact IPv6 list: 18 bytes per peer; a trailing partial entry is ignored. */
  addCompact6(b: Uint8Array): void {
    for (const i of this.order(Math.floor(b.length / 18))) {
      const o = i * 18;
      this.add(formatIPv6(b, o), (b[o + 16]! << 8) | b[o + 17]!);
    }
  }

  /** A textual address from a dictionary-form peer; anything but an IP literal is skipped. */
  addText(host: string, port: number): void {
    let h = host.trim();
    if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
    const family = ipFamily(h);
    if (family === 0) return;
    if (family === 6) {
      // Normalise through the compact formatter so duplicates compare equal.
      const bytes = ipv6ToBytes(h);
      if (!bytes) return;
      h = formatIPv6(bytes);
    }
    this.add(h, port);
  }
}

/** Parses IPv6 text (as accepted by net.isIP) to 16 bytes; null if it cannot. */
export function ipv6ToBytes(text: string): Uint8Array | null {
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let tail: number[] = [];
  // Embedded IPv4 in the last 32 bits.
  const lastColon = s.lastIndexOf(':');
  const last = s.slice(lastColon + 1);
  if (last.includes('.')) {
    const parts = last.split('.').map((p) => Number(p));
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
      return null;
    }
    tail = [(parts[0]! << 8) | parts[1]!, (parts[2]! << 8) | parts[3]!];
    s = s.slice(0, lastColon + 1) + '0';
    // Replace the trailing "0" placeholder group with the two IPv4 groups below.
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !rest) return null;
  if (tail.length) {
    // The placeholder "0" group stands for the embedded IPv4: swap it for the two groups.
    const target = halves.length === 2 ? rest : head;
    target.pop();
    target.push(...tail);
  }
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** An IP literal in one spelling (IPv4-mapped IPv6 as IPv4), or null when not an IP literal. */
export function canonicalHost(host: string): string | null {
  if (isIPv4(host)) return host;
  const b = ipv6ToBytes(host);
  return b ? formatIPv6(b) : null;
}

/**
 * A peer's IPv6 text as `--peer` and a magnet's `x.pe` give it, in one form (RFC 5952, as
 * trackers' addresses are written), so that `[0::1]` and `[::1]` are one peer; an IPv4-mapped
 * address (`::ffff:127.0.0.1`) is the IPv4 address, as a tracker's is taken. A zone
 * (`fe80::1%eth0`) is kept as given: it names an interface, which the connection needs.
 */
export function canonicalPeerIPv6(text: string): string {
  if (text.includes('%')) return text;
  return canonicalHost(text) ?? text;
}

/**
 * Why a server at `url` (a tracker, a web seed, a `.torrent` URL) cannot be reached from `localAddress` (`--bind`): its
 * host is an IP address of the other family. Undefined when it can be, or may be (a name
 * resolves in the family of the local address).
 */
export function otherFamily(url: URL, localAddress: string | undefined): string | undefined {
  if (localAddress === undefined) return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const family = ipFamily(host);
  if (family === 0 || family === familyOfIp(localAddress)) return undefined;
  return `an IPv${family} address, not reachable from --bind ${localAddress}`;
}
