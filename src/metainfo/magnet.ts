/**
 * Magnet links (BEP 9, with `x.pe` from BEP 9, `ws` from BEP 19 and `so` from BEP 53).
 *
 *   magnet:?xt=urn:btih:<40 hex | 32 base32>&dn=<name>&tr=<tracker>&x.pe=<host:port>&ws=<url>&so=<0,2,4-6>
 *
 * The text is untrusted (pasted by users, produced by web pages). Every parameter is
 * percent-decoded exactly once; unknown parameters are ignored; every list is capped. Any
 * problem is a MetainfoError (exit 3) saying what is wrong.
 */
import { MetainfoError } from '../errors.js';
import { canonicalPeerIPv6, ipFamily } from '../tracker/compact.js';
import type { PeerAddress } from '../tracker/types.js';

export interface Magnet {
  /** 20-byte SHA-1 info hash (v1). */
  infoHash: Buffer;
  infoHashHex: string;
  /** `dn`: a display name only, until the metadata arrives (never used for paths). */
  displayName?: string;
  /** One tier per `tr`, in order, duplicates removed. */
  trackers: string[][];
  /** `x.pe` peers. */
  peers: PeerAddress[];
  /** `ws` web seeds. */
  webSeeds: string[];
  /** `so` (BEP 53): file indexes to download, sorted, without duplicates. */
  selectOnly?: number[];
  /** `xt=urn:btmh:1220…` beside the v1 hash: the SHA-256 v2 info hash of a hybrid torrent. */
  v2InfoHash?: Buffer;
  /** `tr`, `x.pe` and `ws` values left out past their caps (distinct ones, the first kept). */
  leftOut: { trackers: number; peers: number; webSeeds: number };
}

/** Longest magnet link accepted, in characters. */
export const MAX_MAGNET_LENGTH = 64 * 1024;
/** Most `&`-separated parameters accepted. */
export const MAX_MAGNET_PARAMS = 1024;
/** Trackers, peers and web seeds kept at most (each); later ones are ignored. */
export const MAX_MAGNET_TRACKERS = 200;
export const MAX_MAGNET_PEERS = 200;
export const MAX_MAGNET_WEB_SEEDS = 50;
/** `so` may select at most this many files, with indexes below it (the .torrent file cap). */
export const MAX_SELECT_ONLY = 100_000;
/** Longest display name kept, in characters. */
export const MAX_DISPLAY_NAME = 1024;

const FIELD = 'magnet';
const PREFIX = /^magnet:/i;
/** Keys that would be dangerous as object properties: refused outright. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isMagnet(s: string): boolean {
  return PREFIX.test(s);
}

function fail(field: string, message: string): never {
  throw new MetainfoError(field, message);
}

function percentDecode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return fail(FIELD, `${what} has a % escape that does not decode`);
  }
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32Decode(s: string): Buffer {
  const out = Buffer.alloc((s.length * 5) / 8);
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of s.toUpperCase()) {
    acc = (acc << 5) | BASE32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

function parseInfoHash(text: string): Buffer {
  if (/^[0-9a-fA-F]{40}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z2-7]{32}$/.test(text)) return base32Decode(text);
  return fail('magnet.xt', 'the info hash must be 40 hex or 32 base32 characters');
}

function parsePeer(s: string): PeerAddress {
  // An IPv6 address may carry a zone (`[fe80::1%eth0]`, written `%25eth0` in the link), as
  // --peer takes it.
  const m =
    /^\[([0-9a-fA-F:.]+(?:%[A-Za-z0-9_.-]+)?)\]:(\d{1,5})$/.exec(s) ??
    /^([^:[\]]+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  const host = m?.[1] ?? '';
  const bracketed = s.startsWith('[');
  const hostOk = bracketed
    ? ipFamily(host) === 6
    : ipFamily(host) === 4 ||
      (host.length <= 253 &&
        /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(
          host,
        ) &&
        !/^[0-9.]+$/.test(host));
  if (!m || !hostOk || !Number.isInteger(port) || port < 1 || port > 65535) {
    return fail('magnet.x.pe', `${JSON.stringify(s)} is not HOST:PORT or [IPv6]:PORT`);
  }
  // As --peer does: `[::ffff:10.0.0.2]` is 10.0.0.2, `[0::1]` is `[::1]`.
  return { host: bracketed ? canonicalPeerIPv6(host) : host, port };
}

function parseSelectOnly(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^(\d{1,9})(?:-(\d{1,9}))?$/.exec(part);
    if (!m) return fail('magnet.so', `${JSON.stringify(part)} is not an index or a range a-b`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return fail('magnet.so', `range ${part} is backwards`);
    if (to >= MAX_SELECT_ONLY) {
      return fail(
        'magnet.so',
        `index ${to} is beyond the ${MAX_SELECT_ONLY} files a torrent may have`,
      );
    }
    if (to - from + 1 + out.size > MAX_SELECT_ONLY) {
      return fail('magnet.so', `selects more than ${MAX_SELECT_ONLY} files`);
    }
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Parses a magnet link. Throws MetainfoError (exit 3) on a malformed link, a missing or bad
 * info hash, a `%` escape that does not decode, a `__proto__`-style key, a bad `x.pe` peer or
 * `so` selection, and v2-only links (`urn:btmh` without `urn:btih`).
 */
export function parseMagnet(uri: string): Magnet {
  if (uri.length > MAX_MAGNET_LENGTH) {
    fail(FIELD, `link is ${uri.length} characters, more than the ${MAX_MAGNET_LENGTH} allowed`);
  }
  if (!/^magnet:\?/i.test(uri)) {
    fail(FIELD, 'malformed magnet link (expected "magnet:?xt=urn:btih:...")');
  }
  // A `#` starts the URI's fragment, which is no part of the query (one in a value is `%23`).
  const cut = uri.indexOf('#');
  const query = uri.slice('magnet:?'.length, cut < 0 ? undefined : cut);
  const params = query.split('&');
  if (params.length > MAX_MAGNET_PARAMS) {
    fail(FIELD, `has more than ${MAX_MAGNET_PARAMS} parameters`);
  }

  let infoHash: Buffer | undefined;
  let sawV2 = false;
  let v2InfoHash: Buffer | undefined;
  let displayName: string | undefined;
  const trackers: string[] = [];
  const peers: PeerAddress[] = [];
  const peerKeys = new Set<string>();
  const webSeeds: string[] = [];
  /** `tr` and `ws` values met (at most MAX_MAGNET_PARAMS). */
  const seen = new Set<string>();
  const leftOut = { trackers: 0, peers: 0, webSeeds: 0 };
  let selectOnly: number[] | undefined;

  for (const param of params) {
    if (param === '') continue;
    const eq = param.indexOf('=');
    const rawKey = eq < 0 ? param : param.slice(0, eq);
    const rawValue = eq < 0 ? '' : param.slice(eq + 1);
    const key = percentDecode(rawKey, 'a parameter name').toLowerCase();
    if (FORBIDDEN_KEYS.has(key))
      fail(FIELD, `parameter name ${JSON.stringify(key)} is not allowed`);
    // `dn` is often form-encoded, with '+' for spaces.
    const value = percentDecode(key === 'dn' ? rawValue.replace(/\+/g, ' ') : rawValue, key);

    if (key === 'xt' || /^xt\.\d+$/.test(key)) {
      // `xt.1`, `xt.2`, ... (BEP 9's numbered form) name the same torrent or fail below.
      const lower = value.toLowerCase();
      if (lower.startsWith('urn:btih:')) {
        const h = parseInfoHash(value.slice('urn:btih:'.length));
        if (infoHash && !infoHash.equals(h)) fail('magnet.xt', 'has two different info hashes');
        infoHash = h;
      } else if (lower.startsWith('urn:btmh:')) {
        sawV2 = true;
        // A multihash: 0x12 (SHA-256), 0x20 (32 bytes), the digest in hex.
        const mh = lower.slice('urn:btmh:'.length);
        if (!/^1220[0-9a-f]{64}$/.test(mh)) {
          fail(
            'magnet.xt',
            `urn:btmh:${mh.slice(0, 80)} is not a SHA-256 multihash (1220 and 64 hex digits)`,
          );
        }
        const h = Buffer.from(mh.slice(4), 'hex');
        if (v2InfoHash && !v2InfoHash.equals(h))
          fail('magnet.xt', 'has two different v2 info hashes');
        v2InfoHash = h;
      }
      // Other URNs (ed2k, sha1, ...) name the content for other networks: ignored.
    } else if (key === 'dn') {
      if (displayName === undefined && value.trim() !== '') {
        displayName = Array.from(value).slice(0, MAX_DISPLAY_NAME).join('');
      }
    } else if (key === 'tr' || /^tr\.\d+$/.test(key)) {
      const url = value.trim();
      if (url !== '' && !seen.has(`tr ${url}`)) {
        seen.add(`tr ${url}`);
        if (trackers.length < MAX_MAGNET_TRACKERS) trackers.push(url);
        else leftOut.trackers++;
      }
    } else if (key === 'x.pe') {
      const p = parsePeer(value.trim());
      const k = `${p.host}|${p.port}`;
      if (!peerKeys.has(k)) {
        peerKeys.add(k);
        if (peers.length < MAX_MAGNET_PEERS) peers.push(p);
        else leftOut.peers++;
      }
    } else if (key === 'ws') {
      const url = value.trim();
      if (url !== '' && !seen.has(`ws ${url}`)) {
        seen.add(`ws ${url}`);
        if (webSeeds.length < MAX_MAGNET_WEB_SEEDS) webSeeds.push(url);
        else leftOut.webSeeds++;
      }
    } else if (key === 'so') {
      if (selectOnly !== undefined) fail('magnet.so', 'appears twice');
      selectOnly = parseSelectOnly(value);
    }
  }

  if (!infoHash) {
    if (sawV2) fail('magnet.xt', 'v2 magnet links are not supported yet');
    fail('magnet.xt', 'missing (expected xt=urn:btih:<info hash>)');
  }
  const m: Magnet = {
    infoHash,
    infoHashHex: infoHash.toString('hex'),
    trackers: trackers.map((t) => [t]),
    peers,
    webSeeds,
    leftOut,
  };
  if (displayName !== undefined) m.displayName = displayName;
  if (selectOnly !== undefined) m.selectOnly = selectOnly;
  if (v2InfoHash !== undefined) m.v2InfoHash = v2InfoHash;
  return m;
}

/** A magnet link for printing: `magnet:?xt=urn:btih:<hex>[&dn=<name>][&tr=<url>...]`. */
export function magnetUri(infoHashHex: string, name?: string, trackers: string[] = []): string {
  if (!/^[0-9a-fA-F]{40}$/.test(infoHashHex)) {
    throw new RangeError(`info hash ${infoHashHex} is not 40 hex characters`);
  }
  let s = `magnet:?xt=urn:btih:${infoHashHex.toLowerCase()}`;
  if (name !== undefined && name !== '') s += `&dn=${encodeURIComponent(name)}`;
  for (const t of trackers) s += `&tr=${encodeURIComponent(t)}`;
  return s;
}
