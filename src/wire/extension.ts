/**
 * BEP 10 extension protocol: the payloads carried by wire message id 20.
 *
 * A message with id 20 is <len><20><extended id><payload>. Extended id 0 is the extended
 * handshake (a bencoded dictionary); any other id names an extension by the number the
 * *receiver* asked for in its own handshake's `m` dictionary. So what we send to a peer uses
 * the ids from the peer's `m`, and what a peer sends us uses the ids from ours
 * (`LOCAL_EXTENSION_IDS`).
 *
 * Pure functions over Buffers. Everything decoded is untrusted: unknown keys are ignored,
 * known keys with the wrong type or out of range are ignored, and lists are capped, so that
 * a sloppy peer still works; only bytes that are not bencode, or not a dictionary, are a
 * WireError.
 */
import { BencodeError, WireError } from '../errors.js';
import { type BDict, decodeStrict, encode, isBytes, isDict, isInt } from '../metainfo/bencode.js';

export const EXTENDED_HANDSHAKE_ID = 0;

/** Extension names tdl implements. */
export const UT_METADATA = 'ut_metadata';
export const UT_PEX = 'ut_pex';

/** The ids tdl asks peers to use when they send us these extensions (our handshake's `m`). */
export const LOCAL_EXTENSION_IDS: Readonly<Record<typeof UT_METADATA | typeof UT_PEX, number>> = {
  [UT_METADATA]: 1,
  [UT_PEX]: 2,
};

/** Entries of a peer's `m` kept at most (libtorrent sends about 10). */
export const MAX_EXTENSIONS = 64;
/** Longest extension name kept, in bytes. */
export const MAX_EXTENSION_NAME_BYTES = 64;
/** Longest client name (`v`) kept, in characters; the rest is cut. */
export const MAX_CLIENT_NAME_CHARS = 64;
/** `reqq` above this is clamped to it (libtorrent's default is 500, its limit 2000s). */
export const MAX_REQQ = 2000;
/** Nesting accepted in an extended handshake (unknown keys may hold small structures). */
const MAX_HANDSHAKE_DEPTH = 16;

export interface ExtendedHandshake {
  /** Extension name -> id the sender wants us to use for it (0 = the sender disables it). */
  m: Map<string, number>;
  /** Client name/version, printable (control characters replaced by U+FFFD), capped. */
  v?: string;
  /** The sender's listen port (1..65535). */
  p?: number;
  /** Most requests the sender accepts outstanding (1..MAX_REQQ). */
  reqq?: number;
  /** `metadata_size` (ut_metadata, BEP 9): a non-negative integer, checked by its user. */
  metadataSize?: number;
  /** Our address as the sender sees it: 4 or 16 bytes. */
  yourip?: Buffer;
}

function checkExtId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id > 255) {
    throw new RangeError(`${what} must be an integer in 0..255, got ${id}`);
  }
}

/** The bencoded dictionary payload of an extended handshake. */
export function encodeExtendedHandshake(h: ExtendedHandshake): Buffer {
  const m: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [name, id] of h.m) {
    checkExtId(id, `extension id of ${name}`);
    if (name === '__proto__') throw new RangeError('extension name __proto__ is not allowed');
    m[name] = id;
  }
  const d: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  d['m'] = m;
  if (h.v !== undefined) d['v'] = h.v;
  if (h.p !== undefined) {
    if (!Number.isInteger(h.p) || h.p < 1 || h.p > 65535) {
      throw new RangeError(`port ${h.p} is out of range`);
    }
    d['p'] = h.p;
  }
  if (h.reqq !== undefined) d['reqq'] = h.reqq;
  if (h.metadataSize !== undefined) d['metadata_size'] = h.metadataSize;
  if (h.yourip !== undefined) {
    if (h.yourip.length !== 4 && h.yourip.length !== 16) {
      throw new RangeError('yourip must be 4 or 16 bytes');
    }
    d['yourip'] = h.yourip;
  }
  return encode(d);
}

// C0 and C1 controls, DEL, and the bidi overrides/isolates (they reorder printed text).
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function clientName(b: Buffer): string {
  // Decode at most what can make MAX_CLIENT_NAME_CHARS characters (4 bytes each).
  const text = b.subarray(0, 4 * MAX_CLIENT_NAME_CHARS).toString('utf8');
  return Array.from(text).slice(0, MAX_CLIENT_NAME_CHARS).join('').replace(UNPRINTABLE, '\uFFFD');
}

/**
 * Decodes a bencoded payload that must be a dictionary; WireError otherwise. With
 * `largeIntegers`, an integer beyond 2^53 - 1 is a bigint (a value of the wrong type to the
 * typed checks) rather than a fault of the whole payload.
 */
export function decodeDictPayload(
  payload: Buffer,
  what: string,
  maxDepth: number,
  largeIntegers = false,
): BDict {
  let value;
  try {
    ({ value } = decodeStrict(payload, { maxDepth, largeIntegers }));
  } catch (err) {
    if (err instanceof BencodeError) throw new WireError(`${what}: ${err.message}`);
    throw err;
  }
  if (!isDict(value)) throw new WireError(`${what}: not a dictionary`);
  return value;
}

/**
 * Decodes an extended handshake payload. Throws WireError when it is not one bencoded
 * dictionary; ignores unknown keys and known keys with bad values.
 */
export function decodeExtendedHandshake(payload: Buffer): ExtendedHandshake {
  // A value out of range is ignored like any bad value, however large (`reqq` 2^63).
  const d = decodeDictPayload(payload, 'extended handshake', MAX_HANDSHAKE_DEPTH, true);
  const h: ExtendedHandshake = { m: new Map() };
  const m = d['m'];
  if (isDict(m)) {
    for (const name of Object.keys(m)) {
      if (h.m.size >= MAX_EXTENSIONS) break;
      const id = m[name];
      if (name.length === 0 || Buffer.byteLength(name) > MAX_EXTENSION_NAME_BYTES) continue;
      if (!isInt(id) || id < 0 || id > 255) continue;
      h.m.set(name, id);
    }
  }
  const v = d['v'];
  if (isBytes(v)) h.v = clientName(v);
  const p = d['p'];
  if (isInt(p) && p >= 1 && p <= 65535) h.p = p;
  const reqq = d['reqq'];
  if (isInt(reqq) && reqq >= 1) h.reqq = Math.min(reqq, MAX_REQQ);
  const size = d['metadata_size'];
  if (isInt(size) && size >= 0) h.metadataSize = size;
  const yourip = d['yourip'];
  if (isBytes(yourip) && (yourip.length === 4 || yourip.length === 16)) {
    h.yourip = Buffer.from(yourip);
  }
  return h;
}

/**
 * The id to use when sending extension `name` to a peer whose handshake was `h`, or
 * undefined when the peer does not support it (absent or disabled with 0).
 */
export function peerExtensionId(h: ExtendedHandshake, name: string): number | undefined {
  const id = h.m.get(name);
  return id === undefined || id === 0 ? undefined : id;
}

/** The handshake tdl sends: ut_metadata always, ut_pex unless the torrent is private. */
export function localExtendedHandshake(opts: {
  privateTorrent: boolean;
  metadataSize?: number;
  port?: number;
  version?: string;
  reqq?: number;
  yourip?: Buffer;
}): ExtendedHandshake {
  const m = new Map<string, number>([[UT_METADATA, LOCAL_EXTENSION_IDS[UT_METADATA]]]);
  if (!opts.privateTorrent) m.set(UT_PEX, LOCAL_EXTENSION_IDS[UT_PEX]);
  const h: ExtendedHandshake = { m };
  if (opts.version !== undefined) h.v = opts.version;
  if (opts.port !== undefined && opts.port > 0) h.p = opts.port;
  if (opts.reqq !== undefined) h.reqq = opts.reqq;
  if (opts.metadataSize !== undefined) h.metadataSize = opts.metadataSize;
  if (opts.yourip !== undefined) h.yourip = opts.yourip;
  return h;
}
