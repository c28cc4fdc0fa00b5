/**
 * Strict bencode front end.
 *
 * Decoding is our own: the `bencode` package decodes well-formed input correctly but trusts
 * its input (a negative string length makes it loop forever, deep nesting overflows the stack,
 * big integers lose precision, a `__proto__` key changes what a decoded dictionary appears to
 * contain), and building values in the same pass that checks them halves the objects created
 * for a large .torrent. Encoding is ours too (bencode-encode.ts): the `bencode` package is not
 * loaded at run time (importing it cost 10–20 ms of every `tdl info` and `tdl create`).
 *
 * `decodeStrict` runs one iterative pass over the bytes that checks every rule below and
 * builds the value:
 *
 * - string lengths: decimal, canonical (no leading zeros except "0"), within the buffer;
 * - integers: `i<digits>e`, canonical (`i0e`, no `-0`, no leading zeros, no `+` or `.`),
 *   magnitude at most Number.MAX_SAFE_INTEGER; with `largeIntegers`, a larger one of up to
 *   MAX_LARGE_INTEGER_DIGITS digits becomes a bigint, which every typed accessor below refuses
 *   (so it can only sit in a field nobody reads);
 * - nesting depth at most `maxDepth` (MAX_BENCODE_DEPTH by default);
 * - at most `maxValues` values built (MAX_BENCODE_VALUES by default; dictionary keys count,
 *   file entries handed over in place do not): each costs about 130 bytes of memory, so a
 *   64 MiB input of empty strings would otherwise take 4 GB;
 * - dictionary keys are byte strings, unique once converted to JS strings (UTF-8, or hex when
 *   not valid UTF-8, as `bencode` does), and never `__proto__`; out-of-order keys are
 *   tolerated (old tools wrote them);
 * - exactly one top-level value; nothing after it unless the caller allows trailing bytes
 *   (they are then counted, never parsed); empty input is rejected.
 *
 * The result uses objects that inherit nothing for dictionaries (see BDict) and Buffers for
 * byte strings.
 */
import { BencodeError, MetainfoError } from '../errors.js';
import { encodeCanonical } from './bencode-encode.js';

export type BValue = number | bigint | Buffer | BValue[] | BDict;
/**
 * A decoded dictionary: an object that inherits no property (its prototype is an empty,
 * frozen object whose own prototype is null), so `d['toString']` or `d['constructor']` is
 * undefined unless the key was in the input.
 */
export interface BDict {
  [key: string]: BValue;
}

/** Default limit on nested lists/dictionaries (the top-level container counts as depth 1). */
export const MAX_BENCODE_DEPTH = 64;
/** Hard upper bound accepted for `opts.maxDepth` (the underlying decoder is recursive). */
export const MAX_BENCODE_DEPTH_LIMIT = 1000;
/**
 * Default limit on the values built (see the module comment): about 260 MB at most. A
 * 100,000-file torrent builds far fewer (its file entries are checked in place, and a hybrid's
 * file tree takes about ten values a file); libtorrent stops at 3,000,000 tokens.
 */
export const MAX_BENCODE_VALUES = 2_000_000;

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

/** Converts raw key bytes to the JS string used for that key (as `bencode` does). */
export function bencodeKeyString(bytes: Uint8Array): string {
  const text = keyDecoder.decode(bytes);
  if (text.includes('\uFFFD')) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  }
  return text;
}

// Dictionaries are made with `new Dict()`: like Object.create(null), nothing is inherited, but
// V8 keeps them in its fast object layout (48 instead of 192 bytes for a two-key dictionary,
// which matters for a 100,000-file torrent).
function Dict(this: BDict): void {}
Dict.prototype = Object.freeze(Object.create(null) as object);
const DictCtor = Dict as unknown as new () => BDict;

/** A new empty dictionary that inherits no property. */
export function newDict(): BDict {
  return new DictCtor();
}

interface Frame {
  /** The container being filled: a list, or a dictionary. */
  list: BValue[] | undefined;
  dict: BDict | undefined;
  /** Only for dictionaries: the key whose value comes next; undefined when a key is due. */
  key: string | undefined;
  /** Only for a streamed list (see DecodeOptions.streamList): receives each item. */
  onItem: ((item: BValue, index: number) => void) | undefined;
  count: number;
}

export interface DecodeOptions {
  /**
   * A top-level dictionary key whose value's raw byte span [start, end) is returned (e.g.
   * 'info', whose raw bytes give the info hash).
   */
  spanOf?: string;
  /** Nesting limit, MAX_BENCODE_DEPTH by default, at most MAX_BENCODE_DEPTH_LIMIT. */
  maxDepth?: number;
  /** Values built at most, MAX_BENCODE_VALUES by default. */
  maxValues?: number;
  /** Accept bytes after the value and report their count as `trailing` (never parsed). */
  allowTrailing?: boolean;
  /**
   * Integers beyond 2^53 - 1 (up to MAX_LARGE_INTEGER_DIGITS digits) become bigints instead of
   * failing the whole input: a .torrent may hold one in a field tdl never reads (a timestamp in
   * nanoseconds, a 64-bit id). The typed accessors refuse a bigint, naming its field.
   */
  largeIntegers?: boolean;
  /**
   * The list at `root[path[0]][path[1]]` (or `root[path[0]]`) is not kept: each item is handed to `onItem` as soon
   * as it is complete, and the list in the result stays empty. A 100,000-file torrent then
   * never holds its whole decoded file list (see docs/DESIGN.md). `onItem` may throw.
   */
  streamList?: {
    /** The keys leading to the list from the root: one (`root[a]`) or two. */
    path: readonly [string] | readonly [string, string];
    onItem: (item: BValue, index: number) => void;
    /**
     * Optional fast route for the streamed list's items: an item that is a dictionary of the
     * usual file-entry shape (see scanFileEntry) is checked in place and handed here as
     * positions into the input, never built; any other item is built and goes to `onItem`.
     * Both count towards the same `index`.
     */
    onFileEntry?: (entry: RawFileEntry, index: number) => void;
  };
}

/**
 * A file entry of a streamed list, checked but not built: positions into the input. One object
 * is reused from entry to entry, so read it inside the callback only.
 */
export interface RawFileEntry {
  /** The whole entry's bytes: [start, end). */
  start: number;
  end: number;
  /** `length` (any integer), when present. */
  hasLength: boolean;
  length: number;
  /** `path`: [start, end) of each name, one pair after the other, `pathNames` pairs. */
  path: Int32Array;
  /** How many names `path` has; -1 when there is no `path`. */
  pathNames: number;
  /** `path.utf-8`, the same way. */
  altPath: Int32Array;
  altNames: number;
  /** `attr`: [start, end) of its bytes; attrStart is -1 when absent. */
  attrStart: number;
  attrEnd: number;
}

function describeByte(b: number): string {
  return b >= 0x20 && b < 0x7f
    ? `'${String.fromCharCode(b)}'`
    : `0x${b.toString(16).padStart(2, '0')}`;
}

// The last key string made for each (length, first byte) pair: a torrent repeats the same few
// keys ("length", "path") for every file, and reusing the string spares an allocation each.
const keyCache = new Map<number, string>();

/** Key bytes to string, with a fast path for short ASCII keys (nearly all keys in practice). */
function keyString(buf: Uint8Array, start: number, end: number): string {
  const len = end - start;
  if (len > 0 && len <= 32) {
    const slot = len * 256 + buf[start]!;
    const cached = keyCache.get(slot);
    if (cached !== undefined) {
      let same = true;
      for (let i = 1; i < len; i++) {
        if (cached.charCodeAt(i) !== buf[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return cached;
    }
  }
  if (len <= 32) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (buf[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      const text = Buffer.prototype.latin1Slice.call(buf, start, end);
      // At most 32 * 256 slots: the cache stays small whatever the input.
      if (len > 0) keyCache.set(len * 256 + buf[start]!, text);
      return text;
    }
  }
  return bencodeKeyString(buf.subarray(start, end));
}

/**
 * Reads a string length prefix starting at `pos` (which must hold a digit). Returns the
 * position of the first content byte and the length; throws on anything non-canonical or on
 * a length that runs past the end of the buffer.
 */
/** The length scanStringHeader read last (saves an allocation per string). */
let lastStringLength = 0;

function scanStringHeader(buf: Uint8Array, pos: number): number {
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
      lastStringLength = value;
      return start;
    }
    throw new BencodeError(`unexpected byte ${describeByte(c)} in string length`, pos);
  }
  throw new BencodeError('input truncated inside a string length', pos);
}

/** The value of the integer scanInteger read last (saves an allocation per integer). */
let lastInteger = 0;
/** The integer scanInteger read last when it was beyond 2^53 - 1 (largeIntegers), else null. */
let lastLarge: bigint | null = null;

/** Digits of the longest integer taken as a bigint (largeIntegers); longer ones are refused. */
export const MAX_LARGE_INTEGER_DIGITS = 40;

/**
 * Validates an integer starting at `pos` (which holds 'i'); returns the position after 'e' and
 * leaves the value in `lastInteger`, or in `lastLarge` when it is beyond 2^53 - 1 and `large`
 * allows that (else such an integer throws).
 */
function scanInteger(buf: Uint8Array, pos: number, large = false): number {
  const begin = pos;
  lastLarge = null;
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
      if (value > Number.MAX_SAFE_INTEGER && (!large || digits > MAX_LARGE_INTEGER_DIGITS)) {
        throw new BencodeError('integer is too large (beyond 2^53 - 1)', begin);
      }
      pos++;
      continue;
    }
    if (c === CH_E) {
      if (digits === 0) throw new BencodeError('integer has no digits', begin);
      if (negative && value === 0) throw new BencodeError('integer is negative zero', begin);
      if (value > Number.MAX_SAFE_INTEGER) {
        lastLarge = BigInt(Buffer.from(buf.subarray(begin + 1, pos)).toString('latin1'));
        lastInteger = 0;
      } else lastInteger = negative ? -value : value;
      return pos + 1;
    }
    throw new BencodeError(`unexpected byte ${describeByte(c)} in integer`, pos);
  }
  throw new BencodeError('input truncated inside an integer', pos);
}

const KEY_LENGTH = Buffer.from('length');
const KEY_PATH = Buffer.from('path');
const KEY_PATH_UTF8 = Buffer.from('path.utf-8');
const KEY_ATTR = Buffer.from('attr');
const KEY_PROTO = Buffer.from('__proto__');
/** Other keys a fast-routed file entry may have (`md5sum`, `sha1`, …) before it is built instead. */
const MAX_OTHER_KEYS = 8;

/** What scanFileEntry fills, made once per decode: the entry, and the other keys seen. */
interface EntryScratch {
  entry: RawFileEntry;
  others: Int32Array;
}

function bytesEqual(buf: Uint8Array, start: number, end: number, key: Uint8Array): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[start + i] !== key[i]) return false;
  return true;
}

/** Names a fast-routed path may have (more: the entry is built, and refused, the full way). */
const MAX_ENTRY_NAMES = 128;
/** How many names scanStringList read last. */
let lastListNames = 0;

/**
 * A list of at most MAX_ENTRY_NAMES byte strings starting at `pos` ('l'): their spans go to
 * `spans`, their count to lastListNames. -1: another shape.
 */
function scanStringList(buf: Uint8Array, pos: number, spans: Int32Array): number {
  const len = buf.length;
  let n = 0;
  pos++; // 'l'
  for (;;) {
    if (pos >= len) return -1;
    const c = buf[pos]!;
    if (c === CH_E) {
      lastListNames = n;
      return pos + 1;
    }
    if (c < CH_0 || c > CH_9 || n === MAX_ENTRY_NAMES) return -1;
    const start = scanStringHeader(buf, pos);
    pos = start + lastStringLength;
    spans[2 * n] = start;
    spans[2 * n + 1] = pos;
    n++;
  }
}

/**
 * Checks the dictionary at `pos` as a file entry without building it, filling `e`. Returns the
 * position after it, or -1 when it is not of the plain shape handled here: keys all ASCII, each
 * once, never `__proto__`; `length` an integer, `path` and `path.utf-8` lists of byte strings,
 * `attr` a byte string, at most MAX_OTHER_KEYS other keys whose values are integers or byte
 * strings. Such a dictionary is exactly one the full decoder accepts with the same content. On
 * -1 (or a malformed token, thrown) the caller decodes the entry the full way, which reports
 * any error where it is.
 */
function scanFileEntry(buf: Uint8Array, pos: number, s: EntryScratch): number {
  const len = buf.length;
  const e = s.entry;
  const others = s.others;
  e.start = pos;
  e.hasLength = false;
  e.pathNames = -1;
  e.altNames = -1;
  e.attrStart = -1;
  let nOthers = 0;
  pos++; // 'd'
  for (;;) {
    if (pos >= len) return -1;
    let c = buf[pos]!;
    if (c === CH_E) {
      e.end = pos + 1;
      return pos + 1;
    }
    if (c < CH_0 || c > CH_9) return -1;
    const ks = scanStringHeader(buf, pos);
    const ke = ks + lastStringLength;
    pos = ke;
    if (pos >= len) return -1;
    c = buf[pos]!;
    if (bytesEqual(buf, ks, ke, KEY_LENGTH)) {
      if (e.hasLength || c !== CH_I) return -1;
      pos = scanInteger(buf, pos);
      e.hasLength = true;
      e.length = lastInteger;
    } else if (bytesEqual(buf, ks, ke, KEY_PATH)) {
      if (e.pathNames >= 0 || c !== CH_L) return -1;
      pos = scanStringList(buf, pos, e.path);
      e.pathNames = lastListNames;
    } else if (bytesEqual(buf, ks, ke, KEY_PATH_UTF8)) {
      if (e.altNames >= 0 || c !== CH_L) return -1;
      pos = scanStringList(buf, pos, e.altPath);
      e.altNames = lastListNames;
    } else if (bytesEqual(buf, ks, ke, KEY_ATTR)) {
      if (e.attrStart >= 0 || c < CH_0 || c > CH_9) return -1;
      e.attrStart = scanStringHeader(buf, pos);
      e.attrEnd = e.attrStart + lastStringLength;
      pos = e.attrEnd;
    } else {
      if (nOthers === MAX_OTHER_KEYS || bytesEqual(buf, ks, ke, KEY_PROTO)) return -1;
      for (let i = ks; i < ke; i++) if (buf[i]! >= 0x80) return -1;
      for (let i = 0; i < nOthers; i++) {
        const os = others[2 * i]!;
        if (ke - ks !== others[2 * i + 1]! - os) continue;
        let same = true;
        for (let k = 0; same && k < ke - ks; k++) same = buf[ks + k] === buf[os + k];
        if (same) return -1;
      }
      others[2 * nOthers] = ks;
      others[2 * nOthers + 1] = ke;
      nOthers++;
      if (c === CH_I) pos = scanInteger(buf, pos);
      else if (c >= CH_0 && c <= CH_9) {
        const start = scanStringHeader(buf, pos);
        pos = start + lastStringLength;
      } else return -1;
    }
    if (pos < 0) return -1;
  }
}

/** scanFileEntry, with any malformed token turned into -1 (the full decoder reports it). */
function tryFileEntry(buf: Uint8Array, pos: number, s: EntryScratch): number {
  try {
    return scanFileEntry(buf, pos, s);
  } catch (err) {
    if (err instanceof BencodeError) return -1;
    throw err;
  }
}

function newEntryScratch(): EntryScratch {
  return {
    entry: {
      start: 0,
      end: 0,
      hasLength: false,
      length: 0,
      path: new Int32Array(2 * MAX_ENTRY_NAMES),
      pathNames: -1,
      altPath: new Int32Array(2 * MAX_ENTRY_NAMES),
      altNames: -1,
      attrStart: -1,
      attrEnd: -1,
    },
    others: new Int32Array(2 * MAX_OTHER_KEYS),
  };
}

/**
 * A reader of file entries already handed to `onFileEntry` by decodeStrict: given the same
 * input and the entry's `start`, it fills the same RawFileEntry again (the reader reuses one
 * object, as decodeStrict does). Undefined if `start` holds no such entry.
 */
export function fileEntryReader(): (buf: Uint8Array, start: number) => RawFileEntry | undefined {
  const scratch = newEntryScratch();
  return (buf, start) =>
    buf[start] === CH_D && tryFileEntry(buf, start, scratch) > 0 ? scratch.entry : undefined;
}

/**
 * Validates `buf` as one strict bencode value (see the module comment) and builds it, in
 * linear time without recursion. Returns the span of the value of top-level dictionary key
 * `spanOf` when asked for and present, and how many bytes follow the value (only non-zero
 * with `allowTrailing`; otherwise trailing bytes are an error).
 */
function decodeScan(
  buf: Uint8Array,
  opts: DecodeOptions & { maxDepth: number },
): { value: BValue; span?: [number, number]; trailing: number } {
  const maxDepth = opts.maxDepth;
  const maxValues = opts.maxValues ?? MAX_BENCODE_VALUES;
  let values = 0;
  const built = (at: number): void => {
    if (++values > maxValues) {
      throw new BencodeError(`more than ${maxValues.toLocaleString('en-US')} values`, at);
    }
  };
  const len = buf.length;
  if (len === 0) throw new BencodeError('empty input', 0);
  const whole = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, len);

  const stack: Frame[] = [];
  let pos = 0;
  let spanPending = false;
  let spanStart = -1;
  let span: [number, number] | undefined;
  let result: BValue | undefined;
  const onFileEntry = opts.streamList?.onFileEntry;
  const scratch = newEntryScratch();

  for (;;) {
    const top = stack[stack.length - 1];
    if (pos >= len) {
      throw new BencodeError(
        top ? `input truncated inside a ${top.dict ? 'dictionary' : 'list'}` : 'input truncated',
        pos,
      );
    }
    const c = buf[pos]!;
    let value: BValue;

    if (top !== undefined && top.dict !== undefined && top.key === undefined) {
      if (c === CH_E) {
        stack.pop();
        pos++;
        value = top.dict;
      } else if (c >= CH_0 && c <= CH_9) {
        const start = scanStringHeader(buf, pos);
        const length = lastStringLength;
        built(pos);
        const key = keyString(buf, start, start + length);
        if (key === '__proto__') {
          throw new BencodeError('dictionary key "__proto__" is not allowed', pos);
        }
        if (top.dict[key] !== undefined) {
          throw new BencodeError(`duplicate dictionary key ${JSON.stringify(key)}`, pos);
        }
        top.key = key;
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
    } else if (top !== undefined && c === CH_E) {
      // A value is expected here, or the end of a list.
      if (top.dict !== undefined) throw new BencodeError('dictionary key has no value', pos);
      stack.pop();
      pos++;
      value = top.list!;
    } else {
      if (spanPending && stack.length === 1) {
        spanStart = pos;
        spanPending = false;
      }
      if (c === CH_I) {
        built(pos);
        pos = scanInteger(buf, pos, opts.largeIntegers === true);
        value = lastLarge ?? lastInteger;
      } else if (c >= CH_0 && c <= CH_9) {
        built(pos);
        const start = scanStringHeader(buf, pos);
        pos = start + lastStringLength;
        value = whole.subarray(start, pos);
      } else if (c === CH_L || c === CH_D) {
        if (
          c === CH_D &&
          onFileEntry !== undefined &&
          top !== undefined &&
          top.onItem !== undefined &&
          stack.length + 2 <= maxDepth
        ) {
          // The entry dictionary and its path lists stay within maxDepth.
          const end = tryFileEntry(buf, pos, scratch);
          if (end > 0) {
            onFileEntry(scratch.entry, top.count++);
            pos = end;
            continue;
          }
        }
        if (stack.length >= maxDepth) {
          throw new BencodeError(`nesting deeper than ${maxDepth} levels`, pos);
        }
        built(pos);
        if (c === CH_D) {
          stack.push({
            list: undefined,
            dict: new DictCtor(),
            key: undefined,
            onItem: undefined,
            count: 0,
          });
        } else {
          const stream = opts.streamList;
          const streamed =
            stream !== undefined &&
            stack.length === stream.path.length &&
            stack[0]!.key === stream.path[0] &&
            (stack.length === 1 || stack[1]!.key === stream.path[1]);
          stack.push({
            list: [],
            dict: undefined,
            key: undefined,
            onItem: streamed ? stream.onItem : undefined,
            count: 0,
          });
        }
        pos++;
        continue;
      } else {
        throw new BencodeError(`unexpected byte ${describeByte(c)}`, pos);
      }
    }

    // A value (scalar, or a container just closed) has ended at `pos`.
    const parent = stack[stack.length - 1];
    if (parent === undefined) {
      result = value;
      break;
    }
    if (parent.dict !== undefined) {
      parent.dict[parent.key!] = value;
      parent.key = undefined;
    } else {
      if (parent.onItem !== undefined) parent.onItem(value, parent.count++);
      else parent.list!.push(value);
    }
    if (stack.length === 1 && spanStart >= 0 && span === undefined) {
      span = [spanStart, pos];
    }
  }

  if (pos !== len && !opts.allowTrailing) {
    throw new BencodeError(`${len - pos} unexpected trailing byte(s) after the value`, pos);
  }
  return span
    ? { value: result, span, trailing: len - pos }
    : { value: result, trailing: len - pos };
}

/**
 * Validates then decodes one bencoded value. Throws BencodeError (with the byte offset) on
 * anything malformed; never hangs (linear time in the input size). Byte strings in the result
 * are views into `buf` (no copy): keep `buf` unchanged while the value is in use.
 *
 * Options: see DecodeOptions.
 */
export function decodeStrict(
  buf: Uint8Array,
  opts: DecodeOptions = {},
): { value: BValue; span?: [number, number]; trailing: number } {
  const maxDepth = Math.min(opts.maxDepth ?? MAX_BENCODE_DEPTH, MAX_BENCODE_DEPTH_LIMIT);
  return decodeScan(buf, { ...opts, maxDepth });
}

/**
 * Encodes `value` canonically (keys in order of their UTF-8 bytes); throws TypeError for what
 * bencode cannot hold (see encodeCanonical).
 */
export function encode(value: unknown): Buffer {
  return encodeCanonical(value);
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
  if (typeof v === 'bigint') throw new MetainfoError(field, `${v} is too large`);
  if (!isInt(v)) throw new MetainfoError(field, 'must be an integer');
  if (bounds.min !== undefined && v < bounds.min) {
    throw new MetainfoError(field, `${v} is below the minimum ${bounds.min}`);
  }
  if (bounds.max !== undefined && v > bounds.max) {
    throw new MetainfoError(field, `${v} is above the maximum ${bounds.max}`);
  }
  return v;
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
