/**
 * Path rules for file names coming from a .torrent. Unsafe names are REJECTED, never rewritten
 * (only names that are not UTF-8 are mapped to text, reversibly: see componentFromBytes):
 * a torrent that would write outside its folder, or two of whose files would land on the same
 * path, is refused as a whole.
 */
import { MetainfoError } from '../errors.js';

/** Most components allowed in one file path (deeper trees are refused). */
export const MAX_PATH_DEPTH = 128;
/**
 * Longest path component in bytes: NAME_MAX of Linux's file systems (ext4, xfs, btrfs, tmpfs).
 * A longer one could never be created: refused with the torrent's other unsafe names, not after
 * the whole download (it failed at the final rename, and again at every run).
 */
export const MAX_NAME_BYTES = 255;
/** Components of at most this many UTF-16 units are at most MAX_NAME_BYTES bytes of UTF-8. */
const SURELY_SHORT = Math.floor(MAX_NAME_BYTES / 3);

const DRIVE_LETTER = /^[A-Za-z]:/;
const ONLY_DOTS = /^\.+$/;

/** NFC-normalises a path component (call before checking or comparing). */
export function normalizeComponent(component: string): string {
  return component.normalize('NFC');
}

/** A component checkPathComponent accepts (one test, for the common case). */
const SAFE_COMPONENT = /^(?!\.+$)(?![A-Za-z]:)[^/\\\0]+$/;

/** A field name, or a function that builds it (only called when there is an error to report). */
export type Field = string | (() => string);

const fieldName = (f: Field): string => (typeof f === 'string' ? f : f());

/** True when checkPathComponent accepts `component` (already NFC-normalised). */
export function isSafeComponent(component: string): boolean {
  return (
    SAFE_COMPONENT.test(component) &&
    (component.length <= SURELY_SHORT || Buffer.byteLength(component) <= MAX_NAME_BYTES)
  );
}

/**
 * What the name held in `buf[start, end)` is: 1, ASCII that checkPathComponent accepts (ASCII
 * is its own NFC form: the text is the bytes); 0, ASCII that it refuses; 2, not all ASCII.
 */
export function asciiNameKind(buf: Uint8Array, start: number, end: number): 0 | 1 | 2 {
  let dotsOnly = true;
  let unsafe = end <= start;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c >= 0x80) return 2;
    if (c === 0x2f || c === 0x5c || c === 0) unsafe = true; // / \ NUL
    if (c !== 0x2e) dotsOnly = false;
  }
  if (unsafe || dotsOnly || end - start > MAX_NAME_BYTES) return 0;
  const first = buf[start]! | 0x20;
  if (end - start >= 2 && buf[start + 1] === 0x3a && first >= 0x61 && first <= 0x7a) {
    return 0; // a drive letter
  }
  return 1;
}

/**
 * The path component held in `buf[start, end)` when it is ASCII that checkPathComponent
 * accepts (ASCII is its own NFC form): the common case, read without a decoder or a regex.
 * Undefined for anything else, which then takes the full route (componentFromBytes,
 * normalizeComponent, checkPathComponent).
 */
export function safeAsciiComponent(
  buf: Uint8Array,
  start: number,
  end: number,
): string | undefined {
  if (asciiNameKind(buf, start, end) !== 1) return undefined;
  return Buffer.prototype.latin1Slice.call(buf, start, end);
}

/**
 * A name from a torrent in a message, between double quotes, as it is: the CLI escapes its
 * control characters as it does any name it prints (`\x1b`, `\n`; see src/cli/format.ts),
 * and `--json` carries it whole.
 */
export function quoted(name: string): string {
  return `"${name}"`;
}

/**
 * Checks one (already NFC-normalised) path component; throws MetainfoError naming `field`.
 * Refused: empty, only dots (".", "..", "..."), '/', '\', NUL, the Windows drive-letter form
 * ("C:", "c:foo"), and more than MAX_NAME_BYTES bytes.
 */
export function checkPathComponent(component: string, f: Field): void {
  if (component.length <= SURELY_SHORT && SAFE_COMPONENT.test(component)) return;
  const field = fieldName(f);
  const bytes = Buffer.byteLength(component);
  if (bytes > MAX_NAME_BYTES) {
    const shown = `${quoted(Array.from(component).slice(0, 32).join(''))}…`;
    throw new MetainfoError(
      field,
      `path component ${shown} is ${bytes} bytes, longer than the ${MAX_NAME_BYTES} a file name may have`,
    );
  }
  if (SAFE_COMPONENT.test(component)) return;
  if (component.length === 0) throw new MetainfoError(field, 'empty path component');
  if (ONLY_DOTS.test(component)) {
    throw new MetainfoError(field, `path component ${quoted(component)} is only dots`);
  }
  if (component.includes('/') || component.includes('\\')) {
    throw new MetainfoError(field, `path component ${quoted(component)} contains a path separator`);
  }
  if (component.includes('\0')) {
    throw new MetainfoError(field, `path component ${quoted(component)} contains NUL`);
  }
  if (DRIVE_LETTER.test(component)) {
    throw new MetainfoError(field, `path component ${quoted(component)} looks like a drive letter`);
  }
}

/**
 * Checks a whole relative path (list of normalised components): non-empty, not too deep,
 * every component valid, and the joined path not absolute.
 */
export function checkRelativePath(components: readonly string[], field: Field): void {
  if (components.length === 0) throw new MetainfoError(fieldName(field), 'empty path');
  if (components.length > MAX_PATH_DEPTH) {
    throw new MetainfoError(fieldName(field), `path has more than ${MAX_PATH_DEPTH} components`);
  }
  components.forEach((c, i) => checkPathComponent(c, () => `${fieldName(field)}[${i}]`));
  // With every component valid the path cannot be absolute; checked anyway, on the first one.
  const first = components[0]!;
  if (first.startsWith('/') || first.startsWith('\\') || DRIVE_LETTER.test(first)) {
    throw new MetainfoError(fieldName(field), 'path is absolute');
  }
}

/** A growable array of doubles, off the JS heap's young generation. */
class Doubles {
  data = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.data.subarray(0, this.length).sort();
  }
}

/**
 * The cheap half of the collision check (see checkPathCollisions): a 53-bit hash of each
 * path, '/'-joined, and of each folder along it (a proper prefix), fed name by name, never
 * joined. No two equal path hashes and no folder hash equal to a path hash: no collision.
 * Equal hashes only say "maybe" (the names themselves are then searched), so a hash that
 * happens to be equal costs time, never a wrong answer: for 100,000 paths a false "maybe"
 * comes about once in two million torrents.
 */
export class PathHashes {
  private readonly files = new Doubles();
  private readonly folders = new Doubles();
  /**
   * The folder hashes added last, by a few bits of their value: files of one folder add the
   * same hashes again and again, and one copy is enough.
   */
  private readonly recent = new Float64Array(4096).fill(-1);
  /** The slots of `recent` set since begin(), undone by abandon(). */
  private readonly touched = new Int32Array(MAX_PATH_DEPTH + 1);
  private nTouched = 0;
  private a = 0;
  private b = 0;
  private names = 0;
  private foldersAtStart = 0;

  /** Starts a path. */
  begin(): void {
    this.a = 0x811c9dc5;
    this.b = 0x9747b28c;
    this.names = 0;
    this.nTouched = 0;
    this.foldersAtStart = this.folders.length;
  }

  /** Forgets the path begun last (it was not added after all). */
  abandon(): void {
    this.folders.length = this.foldersAtStart;
    for (let i = 0; i < this.nTouched; i++) this.recent[this.touched[i]!] = -1;
  }

  /** Before each name but the first: the folder so far is recorded, then a '/' is fed. */
  private separate(): void {
    if (this.names++ === 0) return;
    const h = (this.a >>> 0) * 0x200000 + ((this.b >>> 0) & 0x1fffff);
    const slot = this.a & 4095;
    if (this.recent[slot] !== h) {
      this.recent[slot] = h;
      if (this.nTouched < this.touched.length) this.touched[this.nTouched++] = slot;
      else this.recent.fill(-1); // a path deeper than any checked one: forget them all
      this.folders.push(h);
    }
    this.a = Math.imul(this.a ^ 0x2f, 0x01000193);
    const b = Math.imul(this.b ^ 0x2f, 0x5bd1e995);
    this.b = b ^ (b >>> 13);
  }

  /** The next name of the path, as text. */
  text(name: string): void {
    this.separate();
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < name.length; i++) {
      const u = name.charCodeAt(i);
      a = Math.imul(a ^ u, 0x01000193);
      b = Math.imul(b ^ u, 0x5bd1e995);
      b ^= b >>> 13;
    }
    this.a = a;
    this.b = b;
  }

  /** The next name of the path, as ASCII bytes (the same units as its text). */
  ascii(buf: Uint8Array, start: number, end: number): void {
    this.separate();
    let a = this.a;
    let b = this.b;
    for (let i = start; i < end; i++) {
      const u = buf[i]!;
      a = Math.imul(a ^ u, 0x01000193);
      b = Math.imul(b ^ u, 0x5bd1e995);
      b ^= b >>> 13;
    }
    this.a = a;
    this.b = b;
  }

  /** Ends the path begun last. */
  end(): void {
    this.files.push((this.a >>> 0) * 0x200000 + ((this.b >>> 0) & 0x1fffff));
  }

  /** False when no two of the paths added can collide. */
  maybeCollide(): boolean {
    const files = this.files.sorted();
    for (let i = 1; i < files.length; i++) if (files[i] === files[i - 1]) return true;
    const folders = this.folders.sorted();
    // Both lists sorted: is any folder also a file?
    let i = 0;
    for (let k = 0; k < folders.length; k++) {
      const h = folders[k]!;
      while (i < files.length && files[i]! < h) i++;
      if (i < files.length && files[i] === h) return true;
    }
    return false;
  }
}

/**
 * Refuses two files that would collide on disk: equal normalised paths, or one file's path
 * being a directory (proper prefix) of another's. `fieldOf(i)` names file i in messages.
 * Components never contain '/', so '/'-joined strings identify paths unambiguously. The caller
 * runs it only when PathHashes says a collision is possible: it finds the pair and the message
 * (an equal pair first, else the first file inside another).
 */
export function checkPathCollisions(
  paths: readonly (readonly string[])[],
  fieldOf: (i: number) => string,
): void {
  const files = new Map<string, number>();
  paths.forEach((p, i) => {
    const key = p.join('/');
    const other = files.get(key);
    if (other !== undefined) {
      throw new MetainfoError(fieldOf(i), `same path as ${fieldOf(other)} (${key})`);
    }
    files.set(key, i);
  });
  paths.forEach((p, i) => {
    let prefix = '';
    for (let k = 0; k < p.length - 1; k++) {
      prefix = k === 0 ? p[0]! : `${prefix}/${p[k]!}`;
      const other = files.get(prefix);
      if (other !== undefined) {
        throw new MetainfoError(
          fieldOf(i),
          `is inside ${prefix}, which is also a file (${fieldOf(other)})`,
        );
      }
    }
  });
}

/**
 * A path component's text from its raw bytes. Valid UTF-8 is used as is (`remapped` false).
 * Otherwise every byte that is not part of a valid UTF-8 sequence, and every '%', becomes
 * `%XX` (upper-case hex), and valid sequences stay as they are: deterministic, and reversible
 * (decode each `%XX` to its byte, everything else to its UTF-8 bytes).
 */
export function componentFromBytes(b: Uint8Array): { text: string; remapped: boolean } {
  const ascii = asciiText(b);
  if (ascii !== undefined) return { text: ascii, remapped: false };
  try {
    return { text: fatalUtf8.decode(b), remapped: false };
  } catch {
    return { text: percentEncodeInvalidUtf8(b), remapped: true };
  }
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `b` when it is all ASCII (the common case, decoded without TextDecoder). */
function asciiText(b: Uint8Array): string | undefined {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return undefined;
  return Buffer.prototype.latin1Slice.call(b, 0, b.length);
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean =>
    i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** See componentFromBytes. */
export function percentEncodeInvalidUtf8(b: Uint8Array): string {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let out = '';
  let run = 0; // start of the current run of valid bytes
  let i = 0;
  while (i < buf.length) {
    const n = buf[i] === 0x25 ? 0 : utf8SequenceLength(buf, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += buf.toString('utf8', run, i);
    out += `%${buf[i]!.toString(16).toUpperCase().padStart(2, '0')}`;
    i++;
    run = i;
  }
  return out + buf.toString('utf8', run, i);
}

/**
 * Inverse of percentEncodeInvalidUtf8: the bytes a mapped name came from (each `%` starts a
 * `%XX`).
 */
export function percentDecodeComponent(text: string): Buffer {
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%') {
      parts.push(Buffer.from(text.slice(run, i), 'utf8'));
      parts.push(Buffer.from([parseInt(text.slice(i + 1, i + 3), 16)]));
      i += 2;
      run = i + 1;
    }
  }
  parts.push(Buffer.from(text.slice(run), 'utf8'));
  return Buffer.concat(parts);
}
