/**
 * KRPC codec (BEP 5, with BEP 32 `nodes6`). Pure: bytes in, a typed message out, or a DhtError.
 *
 * Every datagram goes through the strict bencode guard first (`decodeStrict`), then each field
 * is checked for type and size: ids are exactly 20 bytes, transaction ids at most
 * MAX_TID_BYTES, compact node lists are cut to whole entries and capped, peer values are capped
 * at MAX_VALUES_PER_REPLY. Unknown keys are ignored (BEP 5 allows extensions).
 */
import { DhtError, TdlError } from '../errors.js';
import { decodeStrict, encode, isBytes, isDict, isInt, isList } from '../metainfo/bencode.js';
import type { BDict, BValue } from '../metainfo/bencode.js';
import { formatIPv6, ipFamily, ipv6ToBytes, isNeverAPeer } from '../tracker/compact.js';
import type { PeerAddress } from '../tracker/types.js';
import { ID_LENGTH } from './node-id.js';

/** Datagrams larger than this are dropped unread (a full BEP 5/32 reply is well under it). */
export const MAX_DATAGRAM_BYTES = 4096;
/** Transaction ids longer than this are refused (ours are 2 bytes; others use up to 4–8). */
export const MAX_TID_BYTES = 16;
/** At most this many peers are taken from one `values` list. */
export const MAX_VALUES_PER_REPLY = 100;
/** At most this many nodes are taken from one `nodes` (and from one `nodes6`) string. */
export const MAX_NODES_PER_REPLY = 64;
/** Bencode nesting allowed in a KRPC message (the deepest legal one is 3). */
const MAX_KRPC_DEPTH = 4;

export const NODE4_BYTES = 26;
export const NODE6_BYTES = 38;

export type QueryMethod = 'ping' | 'find_node' | 'get_peers' | 'announce_peer';

/** A DHT contact: its id and UDP address. */
export interface NodeInfo {
  id: Buffer;
  host: string;
  port: number;
}

export interface QueryArgs {
  /** find_node */
  target?: Buffer;
  /** get_peers, announce_peer */
  infoHash?: Buffer;
  /** announce_peer */
  port?: number;
  token?: Buffer;
  impliedPort?: boolean;
  /** BEP 32: 'n4' and/or 'n6'. */
  want?: string[];
}

export interface KrpcQuery {
  y: 'q';
  t: Buffer;
  /** The method name as sent; unknown ones are answered with error 204. */
  q: string;
  id: Buffer;
  args: QueryArgs;
}

export interface KrpcResponse {
  y: 'r';
  t: Buffer;
  id: Buffer;
  nodes: NodeInfo[];
  nodes6: NodeInfo[];
  values: PeerAddress[];
  token?: Buffer;
}

export interface KrpcErrorReply {
  y: 'e';
  t: Buffer;
  code: number;
  message: string;
}

export type KrpcMessage = KrpcQuery | KrpcResponse | KrpcErrorReply;

export const ERR_GENERIC = 201;
export const ERR_SERVER = 202;
export const ERR_PROTOCOL = 203;
export const ERR_METHOD_UNKNOWN = 204;

function fail(message: string): never {
  throw new DhtError(`KRPC: ${message}`);
}

function id20(v: BValue | undefined, field: string): Buffer {
  if (!isBytes(v) || v.length !== ID_LENGTH) fail(`${field} must be 20 bytes`);
  return Buffer.from(v);
}

function optId20(v: BValue | undefined, field: string): Buffer | undefined {
  return v === undefined ? undefined : id20(v, field);
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p > 0 && p <= 65535;
}

function ipv4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/**
 * Compact node info: 26 bytes per IPv4 node (id, address, port) or 38 per IPv6 node (BEP 32).
 * Entries with port 0, an unspecified address, or one no node can have (IPv4 0/8, multicast,
 * reserved and broadcast from 224.0.0.0 up; IPv6 multicast) are skipped: a node that lists them
 * would have us send queries to a whole network. A trailing partial entry is ignored; at most
 * `max` nodes are returned.
 */
export function decodeNodes(b: Uint8Array, family: 4 | 6, max = MAX_NODES_PER_REPLY): NodeInfo[] {
  const size = family === 4 ? NODE4_BYTES : NODE6_BYTES;
  const out: NodeInfo[] = [];
  for (let o = 0; o + size <= b.length && out.length < max; o += size) {
    const id = Buffer.from(b.subarray(o, o + ID_LENGTH));
    const host = family === 4 ? ipv4(b, o + 20) : formatIPv6(b, o + 20);
    const port = (b[o + size - 2]! << 8) | b[o + size - 1]!;
    if (port === 0 || isNeverAPeer(host)) continue;
    if (family === 6 && host.includes('.')) continue; // IPv4-mapped: not an IPv6 contact
    out.push({ id, host, port });
  }
  return out;
}

/** Encodes nodes of one family (others are skipped) as compact node info. */
export function encodeNodes(nodes: readonly NodeInfo[], family: 4 | 6): Buffer {
  const parts: Buffer[] = [];
  for (const n of nodes) {
    const addr = compactAddress(n.host, n.port);
    if (!addr || (addr.length === 6) !== (family === 4)) continue;
    parts.push(Buffer.concat([n.id, addr]));
  }
  return Buffer.concat(parts);
}

/** 6 bytes (IPv4) or 18 bytes (IPv6) for an address and port; null for anything else. */
export function compactAddress(host: string, port: number): Buffer | null {
  if (!validPort(port)) return null;
  const family = ipFamily(host);
  let addr: Buffer;
  if (family === 4) {
    addr = Buffer.from(host.split('.').map((x) => Number(x)));
  } else if (family === 6) {
    const b = ipv6ToBytes(host);
    if (!b) return null;
    addr = Buffer.from(b);
  } else {
    return null;
  }
  const out = Buffer.alloc(addr.length + 2);
  addr.copy(out);
  out.writeUInt16BE(port, addr.length);
  return out;
}

/** `values`: a list of compact peers (6 or 18 bytes each). Bad entries are skipped; capped. */
function decodeValues(v: BValue | undefined): PeerAddress[] {
  if (v === undefined) return [];
  if (!isList(v)) fail('values must be a list');
  const out: PeerAddress[] = [];
  const seen = new Set<string>();
  for (const item of v) {
    if (out.length >= MAX_VALUES_PER_REPLY) break;
    if (!isBytes(item)) continue;
    let host: string;
    if (item.length === 6) host = ipv4(item, 0);
    else if (item.length === 18) host = formatIPv6(item, 0);
    else continue;
    const port = (item[item.length - 2]! << 8) | item[item.length - 1]!;
    if (port === 0 || host === '0.0.0.0' || host === '::') continue;
    const key = `${host}|${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ host, port });
  }
  return out;
}

function text(v: BValue | undefined, field: string): string {
  if (!isBytes(v)) fail(`${field} must be a byte string`);
  return v.toString('latin1');
}

function decodeArgs(a: BDict): QueryArgs {
  const args: QueryArgs = {};
  const target = optId20(a['target'], 'a.target');
  if (target) args.target = target;
  const infoHash = optId20(a['info_hash'], 'a.info_hash');
  if (infoHash) args.infoHash = infoHash;
  const port = a['port'];
  if (port !== undefined) {
    if (!isInt(port) || port < 0 || port > 65535) fail('a.port must be an integer 0..65535');
    args.port = port;
  }
  const token = a['token'];
  if (token !== undefined) {
    if (!isBytes(token) || token.length > 64) fail('a.token must be at most 64 bytes');
    args.token = Buffer.from(token);
  }
  const implied = a['implied_port'];
  if (implied !== undefined) {
    if (!isInt(implied)) fail('a.implied_port must be an integer');
    args.impliedPort = implied !== 0;
  }
  const want = a['want'];
  if (want !== undefined && isList(want)) {
    args.want = want
      .filter(isBytes)
      .slice(0, 4)
      .map((w) => w.toString('latin1'));
  }
  return args;
}

/**
 * Decodes one KRPC datagram. Throws DhtError (a TdlError) on anything malformed: bad bencode,
 * a missing or mistyped field, an oversized datagram.
 */
export function decodeKrpc(buf: Uint8Array): KrpcMessage {
  if (buf.length > MAX_DATAGRAM_BYTES) fail(`datagram of ${buf.length} bytes is too large`);
  let value: BValue;
  try {
    value = decodeStrict(buf, { maxDepth: MAX_KRPC_DEPTH }).value;
  } catch (err) {
    if (err instanceof TdlError) fail(err.message);
    throw err;
  }
  if (!isDict(value)) fail('message is not a dictionary');
  const t = value['t'];
  if (!isBytes(t) || t.length > MAX_TID_BYTES) fail('t must be a byte string of at most 16 bytes');
  const tid = Buffer.from(t);
  const y = text(value['y'], 'y');
  if (y === 'q') {
    const q = text(value['q'], 'q');
    if (q.length > 32) fail('q is too long');
    const a = value['a'];
    if (!isDict(a)) fail('a must be a dictionary');
    return { y: 'q', t: tid, q, id: id20(a['id'], 'a.id'), args: decodeArgs(a) };
  }
  if (y === 'r') {
    const r = value['r'];
    if (!isDict(r)) fail('r must be a dictionary');
    const nodes = r['nodes'];
    const nodes6 = r['nodes6'];
    if (nodes !== undefined && !isBytes(nodes)) fail('r.nodes must be a byte string');
    if (nodes6 !== undefined && !isBytes(nodes6)) fail('r.nodes6 must be a byte string');
    const token = r['token'];
    if (token !== undefined && (!isBytes(token) || token.length > 64)) {
      fail('r.token must be at most 64 bytes');
    }
    const msg: KrpcResponse = {
      y: 'r',
      t: tid,
      id: id20(r['id'], 'r.id'),
      nodes: nodes ? decodeNodes(nodes, 4) : [],
      nodes6: nodes6 ? decodeNodes(nodes6, 6) : [],
      values: decodeValues(r['values']),
    };
    if (token) msg.token = Buffer.from(token);
    return msg;
  }
  if (y === 'e') {
    const e = value['e'];
    if (!isList(e) || e.length < 2 || !isInt(e[0])) fail('e must be [code, message]');
    const message = isBytes(e[1]) ? e[1].toString('utf8').slice(0, 200) : '';
    return { y: 'e', t: tid, code: e[0], message };
  }
  fail(`unknown message type ${JSON.stringify(y.slice(0, 8))}`);
}

/** Optional 'v' (client version) we put in every message. */
const VERSION = Buffer.from('TD01', 'latin1');

export function encodeQuery(t: Buffer, q: QueryMethod, id: Buffer, args: QueryArgs = {}): Buffer {
  const a: Record<string, unknown> = { id };
  if (args.target) a['target'] = args.target;
  if (args.infoHash) a['info_hash'] = args.infoHash;
  if (args.port !== undefined) a['port'] = args.port;
  if (args.token) a['token'] = args.token;
  if (args.impliedPort !== undefined) a['implied_port'] = args.impliedPort ? 1 : 0;
  if (args.want) a['want'] = args.want.map((w) => Buffer.from(w, 'latin1'));
  return encode({ t, y: Buffer.from('q'), q: Buffer.from(q), a, v: VERSION });
}

export interface ResponseBody {
  nodes?: readonly NodeInfo[];
  nodes6?: readonly NodeInfo[];
  values?: readonly PeerAddress[];
  token?: Buffer;
}

export function encodeResponse(t: Buffer, id: Buffer, body: ResponseBody = {}): Buffer {
  const r: Record<string, unknown> = { id };
  if (body.nodes) r['nodes'] = encodeNodes(body.nodes, 4);
  if (body.nodes6) r['nodes6'] = encodeNodes(body.nodes6, 6);
  if (body.token) r['token'] = body.token;
  if (body.values) {
    r['values'] = body.values
      .map((p) => compactAddress(p.host, p.port))
      .filter((b): b is Buffer => b !== null);
  }
  return encode({ t, y: Buffer.from('r'), r, v: VERSION });
}

export function encodeError(t: Buffer, code: number, message: string): Buffer {
  return encode({ t, y: Buffer.from('e'), e: [code, Buffer.from(message)] });
}
