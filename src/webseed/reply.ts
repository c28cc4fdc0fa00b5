/**
 * A web seed's reply judged against the range it was asked for (see client.ts): pure, over the
 * status and headers only, before any body byte is read. Also the fault a failure is, and the
 * header parsers.
 *
 * - A redirect status: follow its Location (the caller bounds and checks it).
 * - 404 and 410, 416, another length (by Content-Range or a whole-file reply's Content-Length):
 *   the server lacks that file, or holds another version of it. In a multi-file torrent the
 *   failure names the file (`lackedFile`), which is not asked of that seed again.
 * - A body encoded (Content-Encoding other than identity): its bytes are not the range's.
 * - Any other status but 206 and 200 is an error status, with its Retry-After.
 * - A 206 must name exactly the range in its Content-Range; a 200 is the whole file, usable as
 *   the range when that is the whole file, or read from the file's start.
 * - A Content-Length, when given, must be the range's.
 */
import { TdlError } from '../errors.js';
import { REDIRECT_STATUSES } from '../http.js';

/** Response headers as undici gives them (names in lower case). */
export type ReplyHeaders = Record<string, string | string[] | undefined>;

/** Why a fetch failed. */
export type WebSeedFault =
  | 'url' // the web seed URL is not a usable http(s) URL
  | 'not-found' // 404 / 410
  | 'status' // any other unexpected HTTP status
  | 'redirect' // too many redirects, no Location, or to a refused scheme
  | 'range' // the server ignored or answered another range
  | 'length' // a body (or Content-Length) longer or shorter than the range
  | 'timeout' // headers, body or the whole piece took too long
  | 'network' // connection refused, reset, DNS, TLS, …
  | 'bad-piece' // the caller found a piece that failed verification
  | 'banned' // fetchPiece on a banned seed
  | 'aborted'; // the caller's signal fired (not counted as a failure)

/** A web seed misbehaved or could not be reached: never fatal for a download. */
export class WebSeedError extends TdlError {
  readonly fault: WebSeedFault;
  readonly url: string;
  /** The HTTP status of a `status` fault. */
  readonly statusCode: number | undefined;
  /** The server's `Retry-After` (ms from when it answered), with an error status. */
  readonly retryAfterMs: number | undefined;
  /**
   * The file (multi-file torrents) this failure showed the seed lacks (404, another length):
   * the server answered, about that file only.
   */
  readonly lackedFile: number | undefined;
  constructor(
    url: string,
    fault: WebSeedFault,
    message: string,
    options?: { cause?: unknown; statusCode?: number; retryAfterMs?: number; lackedFile?: number },
  ) {
    super('protocol', `web seed ${url}: ${message}`, options);
    this.fault = fault;
    this.url = url;
    this.statusCode = options?.statusCode;
    this.retryAfterMs = options?.retryAfterMs;
    this.lackedFile = options?.lackedFile;
  }
}

/**
 * A `Retry-After` header (RFC 9110, 10.2.3): delay-seconds or an HTTP date, as milliseconds from
 * `now`; undefined when absent or not one of those (a date in the past is 0).
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** A header's first value (undici gives repeated ones as an array). */
export function header(headers: ReplyHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A wait as the other messages give it: `20s`, `0.3s`. */
export function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

/** Parses `bytes a-b/total` (`total` undefined when `*`); null when malformed. */
export function parseContentRange(
  v: string,
): { first: number; last: number; total?: number } | null {
  const m = /^\s*bytes\s+(\d{1,16})-(\d{1,16})\s*\/\s*(\d{1,16}|\*)\s*$/i.exec(v);
  if (!m) return null;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) return null;
  if (m[3] === '*') return { first, last };
  const total = Number(m[3]);
  return Number.isSafeInteger(total) ? { first, last, total } : null;
}

/** The range asked for, and what a failure about it says. */
export interface AskedRange {
  /** The web seed's URL (errors name the seed by it). */
  seed: string;
  /** The URL that answered (the file's, after redirects). */
  target: string;
  /** File offsets of the range, `end` excluded. */
  start: number;
  end: number;
  fileIndex: number;
  fileLength: number;
  multiFile: boolean;
  /** The clock, for an HTTP-date Retry-After. */
  now: number;
}

/**
 * What to do with the body: `redirect` (discard it, follow Location), `range` (exactly the range's
 * bytes), `whole` (the whole file from its start: the range's bytes after `start` others).
 */
export type Reply = 'redirect' | 'range' | 'whole';

/** Judges a reply's status and headers; throws the WebSeedError it is. */
export function judgeReply(statusCode: number, headers: ReplyHeaders, r: AskedRange): Reply {
  if (REDIRECT_STATUSES.has(statusCode)) return 'redirect';
  const { seed, target, fileLength } = r;
  const lacks = r.multiFile ? { lackedFile: r.fileIndex } : {};
  const expected = r.end - r.start;
  if (statusCode === 404 || statusCode === 410) {
    throw new WebSeedError(seed, 'not-found', `HTTP ${statusCode} for ${target}`, lacks);
  }
  if (statusCode === 416) {
    // The range lies within the torrent's file: the server's copy is shorter, another version.
    throw new WebSeedError(
      seed,
      'range',
      `HTTP 416 for bytes ${r.start}-${r.end - 1} of ${target}: the file is shorter there`,
      lacks,
    );
  }
  // Asked for as they are (accept-encoding: identity): a compressed reply holds other bytes
  // than the range's, whatever its status says.
  const encoding = header(headers, 'content-encoding');
  const encoded = encoding !== undefined && encoding.trim().toLowerCase() !== 'identity';
  if (encoded && (statusCode === 206 || statusCode === 200)) {
    throw new WebSeedError(
      seed,
      'status',
      `HTTP ${statusCode} for ${target} sent ${JSON.stringify(encoding.slice(0, 40))}-encoded (Content-Encoding), though asked for the bytes as they are`,
    );
  }
  if (statusCode !== 206 && statusCode !== 200) {
    const retryAfterMs = parseRetryAfter(header(headers, 'retry-after'), r.now);
    const asked = retryAfterMs === undefined ? '' : ` (Retry-After ${seconds(retryAfterMs)})`;
    throw new WebSeedError(seed, 'status', `HTTP status ${statusCode} for ${target}${asked}`, {
      statusCode,
      retryAfterMs,
    });
  }
  if (statusCode === 200) {
    // The server ignored the Range header and sends the whole file: usable when the whole file
    // is what we asked for, or read from the start.
    if (r.start !== 0 || r.end !== fileLength) {
      const cl = header(headers, 'content-length');
      // The whole file, of another length: another version of it (as a 206 would say).
      if (cl !== undefined && /^\d+$/.test(cl) && Number(cl) !== fileLength) {
        throw new WebSeedError(
          seed,
          'range',
          `${target} is ${cl} bytes there (Content-Length of a whole-file reply), ${fileLength} in the torrent`,
          lacks,
        );
      }
      return 'whole';
    }
  } else {
    const cr = header(headers, 'content-range');
    const range = cr === undefined ? null : parseContentRange(cr);
    if (!range || range.first !== r.start || range.last !== r.end - 1) {
      // A file of another length on the server is another version of it.
      const other = range?.total !== undefined && range.total !== fileLength;
      throw new WebSeedError(
        seed,
        'range',
        `asked for bytes ${r.start}-${r.end - 1}, got Content-Range ${JSON.stringify(cr ?? null)}`,
        other ? lacks : undefined,
      );
    }
    // The range asked for, of a file of another length: another version of the file.
    if (range.total !== undefined && range.total !== fileLength) {
      throw new WebSeedError(
        seed,
        'range',
        `${target} is ${range.total} bytes there (Content-Range), ${fileLength} in the torrent`,
        lacks,
      );
    }
  }
  const cl = header(headers, 'content-length');
  if (cl !== undefined && Number(cl) !== expected) {
    throw new WebSeedError(
      seed,
      'length',
      `Content-Length ${JSON.stringify(cl)} for a range of ${expected} bytes`,
    );
  }
  return 'range';
}
