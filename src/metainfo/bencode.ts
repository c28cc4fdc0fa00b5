/**
 * Strict bencode front end.
 *
 * The `bencode` package decodes well-formed input correctly but trusts its input: a negative
 * string length makes it loop forever, deep nesting overflows the stack, big integers lose
 * precision, a `__proto__` key changes what a decoded dictionary appears to contain, and keys
 * that are not valid UTF-8 are turned into hex strings (so two distinct keys can collide).
 *
 * `decodeStrict` therefore first runs an iterative scanner over the bytes that checks every
 * rule below in one linear pass, and only hands the bytes to `bencode.decode` once they are
 * known to be well formed:
 *
 * - string lengths: decimal, canonical (no leading zeros except "0"), within the buffer;
 * - integers: `i<digits>e`, canonical (`i0e`, no `-0`, no leading zeros, no `+` or `.`),
 *   magnitude at most Number.MAX_SAFE_INTEGER;
 * - nesting depth at most `maxDepth` (MAX_BENCODE_DEPTH by default);
 * - dictionary keys are byte strings, unique once converted to JS strings the way `bencode`
 *   converts them, and never `__proto__`; out-of-order keys are tolerated (old tools wrote them);
 * - exactly one top-level value, nothing after it; empty input is rejected.
 *
 * The result uses null-prototype objects for dictionaries and Buffers for byte strings.
 */
import bencode from 'bencode';
import { BencodeError, MetainfoError } from '../errors.js';

export type BValue = number | Buffer | BValue[] | BDict;
/** A decoded dictionary. Always a null-prototype object. */
export interface BDict {
  [key: string]: BValue;
}

/** Default limit on nested lists/dictionaries (the top-level container counts as depth 1). */
export const MAX_BENCODE_DEPTH = 64;
/** Hard upper bound accepted for `opts.maxDepth` (the underlying decoder is recursive). */
export const MAX_BENCODE_DEPTH_LIMIT = 1000;

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_MINUS = 0x2d;
const CH_D = 0x64;
const CH_E = 0x65;
const CH_I = 0x69;
const CH_L = 0x6c;

// Same conversion as `bencode` uses for dictionary keys: UTF-8 (non-fatal, leading BOM
// stripped), falling back to hex when the result contains U+FFFD.
const keyDecoder = new TextDecoder();

/** Converts raw key bytes to the JS string `bencode.decode` will use for that key. */
export function bencodeKeyString(bytes: Uint8Array): string {
  const text = keyDecoder.decode(bytes);
  if (text.includes('\uFFFD')) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  }
  return text;
}

interface Frame {
  dict: boolean;
  /** Only for dictionaries: keys seen so far (as JS strings). */
  keys: Set<string> | undefined;
  /** Only for dictionaries: true when the next item must be a key. */
  expectKey: boolean;
}

function describeByte(b: number): string {
  return b >= 0x20 && b < 0x7f
    ? `'${String.fromCharCode(b)}'`
    : `0x${b.toString(16).padStart(2, '0')}`;
}

/**
 * Reads a string length prefix starting at `pos` (which must hold a digit). Returns the
 * position of the first content byte and the length; throws on anything non-canonical or on
 * a length that runs past the end of the buffer.
 */
function scanStringHeader(buf: Uint8Array, pos: number): { start: number; length: number } {
  const begin = pos;
  const len = buf.length;
  let value = 0;
  let digits = 0;
  while (pos < len) {
    const c = buf[pos]!;
    if (c >= CH_0 && c <= CH_9) {
      if (digits === 1 && value === 0) {
        throw new BencodeError('string length has a leading zero', begin);
      }
      value = value * 10 + (c - CH_0);
      digits++;
      // Fail as soon as the length cannot fit in what is left of the buffer (at least a ':'
      // follows this digit), so a huge length is refused after a few digits.
      if (value > len - pos - 2) {
        throw new BencodeError(`string length ${value}+ runs past the end of the input`, begin);
      }
      pos++;
      continue;
    }
    if (c === CH_COLON) {
      if (digits === 0) throw new BencodeError('string length is empty', begin);
      const start = pos + 1;
      if (value > len - start) {
        throw new BencodeError(`string length ${value} runs past the end of the input`, begin);
      }
      return { start, length: value };
    }
    throw new BencodeError(`unexpected byte ${describeByte(c)} in string length`, pos);
  }
  throw new BencodeError('input truncated inside a string length', pos);
}

/** Validates an integer starting at `pos` (which holds 'i'); returns the position after 'e'. */
function scanInteger(buf: Uint8Array, pos: number): number {
  const begin = pos;
  const len = buf.length;
  pos++; // 'i'
  let negative = false;
  if (pos < len && buf[pos] === CH_MINUS) {
    negative = true;
    pos++;
  }
  let value = 0;
  let digits = 0;
  let leadingZero = false;
  while (pos < len) {
    const c = buf[pos]!;
    if (c >= CH_0 && c <= CH_9) {
      if (digits === 0 && c === CH_0) leadingZero = true;
      else if (leadingZero) throw new BencodeError('integer has a leading zero', begin);
      value = value * 10 + (c - CH_0);
      digits++;
      if (value > Number.MAX_SAFE_INTEGER) {
        throw new BencodeError('integer is too large (beyond 2^53 - 1)', begin);
      }
      pos++;
      continue;
    }
    if (c === CH_E) {
      if (digits === 0) throw new BencodeError('integer has no digits', begin);
      if (negative && value === 0) throw new BencodeError('integer is negative zero', begin);
      return pos + 1;
    }
    throw new BencodeError(`unexpected byte ${describeByte(c)} in integer`, pos);
  }
  throw new BencodeError('input truncated inside an integer', pos);
}

/**
 * Validates `buf` as exactly one strict bencode value (see the module comment) in linear
 * time without recursion. Returns the span of the value of top-level dictionary key `spanOf`
 * when asked for and present.
 */
export function validateBencode(
  buf: Uint8Array,
  opts: { spanOf?: string; maxDepth?: number } = {},
): { span?: [number, number] } {
  const maxDepth = opts.maxDepth ?? MAX_BENCODE_DEPTH;
  const len = buf.length;
  if (len === 0) throw new BencodeError('empty input', 0);

  const stack: Frame[] = [];
  let pos = 0;
  let spanPending = false;
  let spanStart = -1;
  let span: [number, number] | undefined;

  for (;;) {
    const top = stack[stack.length - 1];
    if (pos >= len) {
      throw new BencodeError(
        top ? `input truncated inside a ${top.dict ? 'dictionary' : 'list'}` : 'input truncated',
        pos,
      );
    }
    const c = buf[pos]!;

    if (top && top.dict && top.expectKey) {
      if (c === CH_E) {
        stack.pop();
        pos++;
      } else if (c >= CH_0 && c <= CH_9) {
        const { start, length } = scanStringHeader(buf, pos);
        const key = bencodeKeyString(buf.subarray(start, start + length));
        if (key === '__proto__') {
          throw new BencodeError('dictionary key "__proto__" is not allowed', pos);
        }
        const keys = top.keys!;
        if (keys.has(key)) {
          throw new BencodeError(`duplicate dictionary key ${JSON.stringify(key)}`, pos);
        }
        keys.add(key);
        top.expectKey = false;
        if (stack.length === 1 && opts.spanOf !== undefined && key === opts.spanOf) {
          spanPending = true;
        }
        pos = start + length;
        continue;
      } else {
        throw new BencodeError(
          `dictionary key must be a byte string, found ${describeByte(c)}`,
          pos,
        );
      }
    } else {
      // A value is expected here (or the end of a list).
      if (top && c === CH_E) {
        if (top.dict) throw new BencodeError('dictionary key has no value', pos);
        stack.pop();
        pos++;
      } else {
        if (spanPending && stack.length === 1) {
          spanStart = pos;
          spanPending = false;
        }
        if (c === CH_I) {
          pos = scanInteger(buf, pos);
        } else if (c >= CH_0 && c <= CH_9) {
          const { start, length } = scanStringHeader(buf, pos);
          pos = start + length;
        } else if (c === CH_L || c === CH_D) {
          if (stack.length >= maxDepth) {
            throw new BencodeError(`nesting deeper than ${maxDepth} levels`, pos);
          }
          const dict = c === CH_D;
          stack.push({ dict, keys: dict ? new Set() : undefined, expectKey: dict });
          pos++;
          continue;
        } else {
          throw new BencodeError(`unexpected byte ${describeByte(c)}`, pos);
        }
      }
    }

    // A value (scalar, or a container just closed) has ended at `pos`.
    const parent = stack[stack.length - 1];
    if (!parent) break;
    if (parent.dict) parent.expectKey = true;
    if (stack.length === 1 && spanStart >= 0 && span === undefined) {
      span = [spanStart, pos];
    }
  }

  if (pos !== len) {
    throw new BencodeError(`${len - pos} unexpected trailing byte(s) after the value`, pos);
  }
  return span ? { span } : {};
}

function convert(v: unknown): BValue {
  if (typeof v === 'number') return v;
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(convert);
  if (v !== null && typeof v === 'object') {
    const out: BDict = Object.create(null) as BDict;
    for (const key of Object.keys(v)) {
      out[key] = convert((v as Record<string, unknown>)[key]);
    }
    return out;
  }
  // Unreachable for input that passed validateBencode.
  throw new BencodeError('unexpected value from decoder', 0);
}

/**
 * Validates then decodes one bencoded value. Throws BencodeError (with the byte offset) on
 * anything malformed; never hangs (linear time in the input size).
 *
 * `opts.spanOf`: a top-level dictionary key whose value's raw byte span [start, end) is
 * returned (e.g. 'info', whose raw bytes give the info hash).
 * `opts.maxDepth`: nesting limit, MAX_BENCODE_DEPTH by default, at most MAX_BENCODE_DEPTH_LIMIT.
 */
export function decodeStrict(
  buf: Uint8Array,
  opts: { spanOf?: string; maxDepth?: number } = {},
): { value: BValue; span?: [number, number] } {
  const maxDepth = Math.min(opts.maxDepth ?? MAX_BENCODE_DEPTH, MAX_BENCODE_DEPTH_LIMIT);
  const { span } = validateBencode(buf, { ...opts, maxDepth });
  let raw: unknown;
  try {
    raw = bencode.decode(buf);
  } catch (err) {
    // Not expected after validation; keep the typed error contract anyway.
    throw new BencodeError(`decoder failed: ${(err as Error).message}`, 0);
  }
  const value = convert(raw);
  return span ? { value, span } : { value };
}

/** Thin wrapper over `bencode.encode` that returns a Buffer. */
export function encode(value: unknown): Buffer {
  const out = bencode.encode(value);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

export function isDict(v: BValue | undefined): v is BDict {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export function isList(v: BValue | undefined): v is BValue[] {
  return Array.isArray(v);
}

export function isBytes(v: BValue | undefined): v is Buffer {
  return Buffer.isBuffer(v);
}

export function isInt(v: BValue | undefined): v is number {
  return typeof v === 'number';
}

// Typed accessors for parsers. `field` is the full path used in error messages
// (e.g. "info.piece length"); they throw MetainfoError naming it.

/** Required dictionary. */
export function getDict(d: BDict, key: string, field: string): BDict {
  const v = d[key];
  if (v === undefined) throw new MetainfoError(field, 'missing');
  if (!isDict(v)) throw new MetainfoError(field, 'must be a dictionary');
  return v;
}

/** Required list. */
export function getList(d: BDict, key: string, field: string): BValue[] {
  const v = d[key];
  if (v === undefined) throw new MetainfoError(field, 'missing');
  if (!isList(v)) throw new MetainfoError(field, 'must be a list');
  return v;
}

/** Required byte string. */
export function getBytes(d: BDict, key: string, field: string): Buffer {
  const v = d[key];
  if (v === undefined) throw new MetainfoError(field, 'missing');
  if (!isBytes(v)) throw new MetainfoError(field, 'must be a byte string');
  return v;
}

/** Required integer, optionally bounded (inclusive). */
export function getInt(
  d: BDict,
  key: string,
  field: string,
  bounds: { min?: number; max?: number } = {},
): number {
  const v = d[key];
  if (v === undefined) throw new MetainfoError(field, 'missing');
  return checkInt(v, field, bounds);
}

/** Checks that `v` is an integer within bounds (inclusive). */
export function checkInt(
  v: BValue,
  field: string,
  bounds: { min?: number; max?: number } = {},
): number {
  if (!isInt(v)) throw new MetainfoError(field, 'must be an integer');
  if (bounds.min !== undefined && v < bounds.min) {
    throw new MetainfoError(field, `${v} is below the minimum ${bounds.min}`);
  }
  if (bounds.max !== undefined && v > bounds.max) {
    throw new MetainfoError(field, `${v} is above the maximum ${bounds.max}`);
  }
  return v;
}

/** Required UTF-8 text (a byte string that is valid UTF-8). */
export function getText(d: BDict, key: string, field: string): string {
  return bytesToText(getBytes(d, key, field), field);
}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes strict UTF-8 or throws MetainfoError naming `field`. */
export function bytesToText(b: Buffer, field: string): string {
  try {
    return fatalDecoder.decode(b);
  } catch {
    throw new MetainfoError(field, 'is not valid UTF-8');
  }
}

/** Optional UTF-8 text: undefined when absent or malformed (for fields that are ignored if bad). */
export function optText(d: BDict, key: string): string | undefined {
  return tryText(d[key]);
}

/** UTF-8 text of `v` if it is a byte string holding valid UTF-8, else undefined. */
export function tryText(v: BValue | undefined): string | undefined {
  if (!isBytes(v)) return undefined;
  try {
    return fatalDecoder.decode(v);
  } catch {
    return undefined;
  }
}

/** Optional integer: undefined when absent or not an integer. */
export function optInt(d: BDict, key: string): number | undefined {
  const v = d[key];
  return isInt(v) ? v : undefined;
}
