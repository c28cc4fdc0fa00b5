/** Text helpers for the terminal. Names from torrents and trackers are untrusted. */

const MAY_NEED_ESCAPE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]/;

/**
 * Escape control characters (C0, DEL, C1), line/paragraph separators, bidirectional marks
 * (LRM, RLM, ALM), embedding, override and isolate controls, the invisible zero-width space,
 * word joiner and BOM, and lone surrogates, so that a name cannot drive the terminal or disguise
 * how the text around it reads (`a\u200bb` looked like `ab`). Joiners that shape text (ZWJ in
 * emoji, ZWNJ in Persian) are left as they are.
 */
export function escapeControl(s: string): string {
  // Most names need nothing: one quick test (it also matches surrogates in valid pairs, which
  // the replacement below leaves as they are).
  if (!MAY_NEED_ESCAPE.test(s)) return s;
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]|[\ud800-\udfff]/gu,
    (c) => {
      const code = c.codePointAt(0)!;
      if (code === 0x0a) return '\\n';
      if (code === 0x0d) return '\\r';
      if (code === 0x09) return '\\t';
      return code <= 0xff
        ? `\\x${code.toString(16).padStart(2, '0')}`
        : `\\u${code.toString(16).padStart(4, '0')}`;
    },
  );
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** The unit formatBytes writes `n` in (an index into UNITS). */
function unitOf(n: number): number {
  let v = n;
  let u = 0;
  // From 1023.5 of a unit on, the figure would round to "1024": the next unit's "1.00" instead.
  while ((v >= 1024 || (u > 0 && v >= 1023.5)) && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u;
}

/** Digits after the point for a figure `v` of a unit above bytes. */
function digitsFor(v: number): number {
  return v >= 100 ? 0 : v >= 10 ? 1 : 2;
}

export function formatBytes(n: number): string {
  const u = unitOf(n);
  if (u === 0) return n + ' B';
  const v = n / 1024 ** u;
  // `+` rather than a template literal: faster in V8, and `tdl info` calls this per file.
  return v.toFixed(digitsFor(v)) + ' ' + UNITS[u]!;
}

/**
 * `part` of `total` bytes as formatBytes writes it, except that a part short of the total never
 * reads as the total: "59.9 MiB of 60.0 MiB", not "60.0 MiB of 60.0 MiB", for a file 128 bytes
 * short. Such a part is written in the total's unit, rounded down at its precision.
 */
export function formatPartBytes(part: number, total: number): string {
  const text = formatBytes(part);
  if (part >= total || text !== formatBytes(total)) return text;
  const u = unitOf(total);
  const x = part / 1024 ** u;
  const scale = 10 ** digitsFor(x);
  return (Math.floor(x * scale) / scale).toFixed(digitsFor(x)) + ' ' + UNITS[u]!;
}

/**
 * `part` of `total` in percent, rounded down to a tenth: 100 only when all of it is there (a
 * download one block short, or one bad byte among gigabytes, must not read as 100.0%).
 */
export function percentDown(part: number, total: number): number {
  return total > 0 && part < total ? Math.floor((part / total) * 1000) / 10 : 100;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Hide what usually carries a private tracker's passkey in URLs printed to the terminal: the
 * query string, and long token-like path segments (`/a1b2…/announce`). Any `scheme://` URL
 * counts (a wss: tracker's passkey is as secret as an https: one's); a `magnet:?…` link has no
 * `//` and is left as it is, though a `scheme://` URL written out whole inside it is not.
 */
export function redactUrls(s: string): string {
  // From the `://` on (the scheme before it is kept as it is): one test per character, however
  // long a run of scheme characters in the text.
  return s.replace(/(?<=[a-z0-9+.-]):\/\/[^\s"'<>]+/gi, (match) => {
    // Punctuation right after a URL ("tracker URL: message") is not part of it.
    const trail = /[:,.;)\]]+$/.exec(match)?.[0] ?? '';
    const url = match.slice(0, match.length - trail.length);
    const q = url.indexOf('?');
    // A user and password (`http://user:pass@host/`) go as the query does.
    const base = (q >= 0 ? url.slice(0, q) : url).replace(/^:\/\/[^/@]*@/, '://…@');
    const shown = base.replace(/\/[A-Za-z0-9_-]{16,}(?=\/|$)/g, '/…');
    return `${q >= 0 ? `${shown}?…` : shown}${trail}`;
  });
}

/**
 * Text from trackers, torrents and peers as every message shows it (text lines and `--json`
 * events alike): passkeys hidden (redactUrls), control and bidi characters escaped.
 */
export function printable(s: string): string {
  return escapeControl(redactUrls(s));
}

/**
 * East Asian Wide and Fullwidth code points (Unicode 15, UAX #11), as [first, last] ranges,
 * emoji excepted (they are found by their properties). A terminal gives each two columns.
 */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], // Hangul Jamo initials
  [0x2329, 0x232a],
  [0x2e80, 0x303e], // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Kanbun, CJK compatibility
  [0x3400, 0x4dbf], // CJK Extension A
  [0x4e00, 0x9fff], // CJK Unified Ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo Extended-A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18cff], // Tangut
  [0x1b000, 0x1b2ff], // Kana supplement, Nushu
  [0x1f200, 0x1f2ff], // enclosed ideographic supplement
  [0x20000, 0x2fffd], // CJK Extensions B to F
  [0x30000, 0x3fffd], // CJK Extension G and after
];

function isWide(cp: number): boolean {
  let lo = 0;
  let hi = WIDE.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = WIDE[mid]!;
    if (cp < a) hi = mid - 1;
    else if (cp > b) lo = mid + 1;
    else return true;
  }
  return false;
}

// Made on first use: building a segmenter costs about 20 ms of CPU (ICU data), and most runs
// never measure a non-ASCII line.
let segmenter: Intl.Segmenter | null = null;
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F|\uFE0F\u20E3/u;
/** Combining marks, zero-width spaces and joiners, variation selectors, other format marks. */
const ZERO_WIDTH = /^[\p{M}\p{Cf}\u200b\u3164\uffa0]$/u;

/** Columns a terminal gives one grapheme cluster (no control characters in it). */
function graphemeWidth(g: string): number {
  if (EMOJI_PRESENTATION.test(g)) return 2;
  const cp = g.codePointAt(0)!;
  if (ZERO_WIDTH.test(String.fromCodePoint(cp))) return 0;
  return isWide(cp) ? 2 : 1;
}

/**
 * The grapheme clusters of `s` as printed, each with its width. Control characters are always
 * clusters of their own, so one that is escaped is replaced whole by its ASCII escape.
 */
function* cells(s: string): Generator<[text: string, width: number]> {
  segmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  for (const { segment } of segmenter.segment(s)) {
    const c = segment.charCodeAt(0);
    if (segment.length === 1 && c >= 0x20 && c < 0x7f) {
      yield [segment, 1]; // printable ASCII, most of any line
      continue;
    }
    const escaped = escapeControl(segment);
    yield escaped === segment ? [segment, graphemeWidth(segment)] : [escaped, escaped.length];
  }
}

/**
 * Columns `s` takes on a terminal once printed with its control characters escaped (see
 * escapeControl): East Asian wide and fullwidth characters and emoji count 2, combining marks
 * and other zero-width characters 0, everything else 1.
 */
export function displayWidth(s: string): number {
  if (/^[\x20-\x7e]*$/.test(s)) return s.length;
  let w = 0;
  for (const [, cw] of cells(s)) w += cw;
  return w;
}

/**
 * `s` with its control characters escaped, cut to at most `columns` terminal columns. Never cuts
 * inside a grapheme cluster (an emoji sequence, a letter and its accents) or an escape; a wide
 * character that would straddle the edge is left out.
 */
export function truncateToWidth(s: string, columns: number): string {
  if (/^[\x20-\x7e]*$/.test(s)) return s.slice(0, Math.max(0, columns));
  let w = 0;
  let out = '';
  for (const [text, cw] of cells(s)) {
    if (w + cw > columns) break;
    w += cw;
    out += text;
  }
  return out;
}

/** Columns assumed when the terminal tells none, or 0 (a pseudo-terminal nobody sized). */
export const DEFAULT_COLUMNS = 80;

/** The terminal's width in columns: DEFAULT_COLUMNS when it reports none or 0. */
export function terminalColumns(out: { columns?: number }): number {
  const c = out.columns;
  return c !== undefined && Number.isFinite(c) && c > 0 ? c : DEFAULT_COLUMNS;
}
