/**
 * One web seed (BEP 19): fetches whole pieces, or runs of consecutive pieces, from an HTTP(S)
 * server with range requests (one per file the pieces touch).
 *
 * The server is untrusted. Each range is one GET with `Range: bytes=a-b`; the reply must be a
 * 206 whose Content-Range and length are exactly the range asked for (a 200, the whole file, is
 * read from the file's start: reply.ts judges the status and headers), the body is copied straight into piece buffers, handed
 * over one by one as they fill, and the stream is destroyed as soon as it goes past the
 * expected length. Headers and every gap in the body are bounded by `timeoutMs`, each piece by
 * `pieceTimeoutMs` (time spent held back by a download limit aside). Redirects are
 * followed by hand, at most `maxRedirects`, only to http: or https: (never from https: down
 * to http:). Every failure backs the seed off (exponentially); the caller verifies the SHA-1 and
 * calls `reportBadPiece()` on a mismatch, and the seed is banned after MAX_BAD_PIECES.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { logger } from '../log.js';
import type { Dispatcher } from 'undici';
import { TdlError } from '../errors.js';
import { followRedirect, informationalLimit } from '../http.js';
import { RateWindow } from '../swarm/rate-window.js';
import { otherFamily } from '../tracker/compact.js';
import { familyOfIp } from '../tracker/compact.js';
import type { Metainfo } from '../metainfo/torrent.js';
import type { Layout } from '../storage/layout.js';
import {
  header,
  judgeReply,
  seconds,
  WebSeedError,
  type Reply,
  type WebSeedFault,
} from './reply.js';
import { type FileRange, runRanges } from './url.js';
import { monotonicMs } from '../clock.js';

const debug = logger('tdl:webseed');

/** Bound on the response headers and on every gap between body chunks. */
export const WEB_SEED_TIMEOUT_MS = 20_000;
/** Bound on each piece (all its ranges and redirects), from the start or the previous piece. */
export const WEB_SEED_PIECE_TIMEOUT_MS = 300_000;
/** Bound on establishing the TCP/TLS connection (default dispatcher). */
export const WEB_SEED_CONNECT_TIMEOUT_MS = 10_000;
/** Redirects followed at most per range. */
export const MAX_WEB_SEED_REDIRECTS = 3;
/** First back-off after a failure; it doubles with each further failure in a row. */
export const WEB_SEED_BACKOFF_BASE_MS = 5_000;
/** Longest back-off. */
export const WEB_SEED_BACKOFF_MAX_MS = 300_000;
/** Pieces failing verification before the seed is banned for the rest of the run. */
export const MAX_BAD_PIECES = 3;
/** Failures in a row, no piece between, after which a seed's bytes are no longer data. */
export const FRUITLESS_FAILURES = 3;
/**
 * Files found missing (or of another length) in a row, with no piece between, that do not back
 * a seed off, once it has sent a piece: the server is up, and its other files are asked for at
 * once. More in a row (a server that lost most of the torrent) back it off as usual.
 */
export const FREE_FILE_FAULTS = 4;
/** A seed's bytes are kept this long for its rate lately (`recentBytes`). */
export const WEB_SEED_RECENT_MS = 5_000;
/**
 * A whole-file reply (a server that ignores ranges) is read past pieces that are not needed
 * from it, up to this many bytes in a row, to reach later ones that are: a new request would
 * read the file from its start again.
 */
export const MAX_PASSED_BYTES = 16 * 1024 * 1024;
/** How often a whole-file reply asks again for a needed piece it could not take yet. */
const GROW_RETRY_MS = 10;

/**
 * A download limit shared with the peers (`--max-download-rate`): every body chunk is reported,
 * and the body is not read further while `waitMs()` is above zero.
 */
export interface ReadLimit {
  onRead(bytes: number): void;
  /** Milliseconds until reading may go on; 0 now. */
  waitMs(): number;
}

export interface WebSeedOptions {
  /** Headers and body-gap timeout (default WEB_SEED_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Whole-piece timeout (default WEB_SEED_PIECE_TIMEOUT_MS). */
  pieceTimeoutMs?: number;
  /** Redirects followed per range (default MAX_WEB_SEED_REDIRECTS). */
  maxRedirects?: number;
  /** undici dispatcher (default: a shared Agent with a connect timeout). */
  dispatcher?: Dispatcher;
  /** Clock for back-off (default Date.now). */
  now?: () => number;
  /** First back-off (default WEB_SEED_BACKOFF_BASE_MS). */
  backoffBaseMs?: number;
  /** Longest back-off (default WEB_SEED_BACKOFF_MAX_MS). */
  backoffMaxMs?: number;
  /** Download limit (default none). */
  limit?: ReadLimit;
  /** Connect from this address (`--bind`), with the default dispatcher. */
  localAddress?: string;
}

type Undici = typeof import('undici');
// undici is loaded on the first web seed request, as for HTTP trackers: a download without web
// seeds never pays for it.
let undici: Promise<{ request: Undici['request']; agent: (local?: string) => Dispatcher }> | null =
  null;
function loadUndici() {
  undici ??= import('undici').then((u) => {
    // One Agent per local address (in practice one: the default, or the --bind address).
    const agents = new Map<string, Dispatcher>();
    const agent = (local?: string): Dispatcher => {
      let a = agents.get(local ?? '');
      if (a === undefined) {
        a = new u.Agent({
          connect: {
            timeout: WEB_SEED_CONNECT_TIMEOUT_MS,
            ...(local === undefined ? {} : { family: familyOfIp(local) }),
          },
          ...(local === undefined ? {} : { localAddress: local }),
          keepAliveTimeout: 4_000,
        });
        agents.set(local ?? '', a);
      }
      return a;
    };
    return { request: u.request, agent };
  });
  undici.catch(() => {
    undici = null;
  });
  return undici;
}

type Body = Dispatcher.ResponseData['body'];

/** Ends a response body we will not read (undici reports the abort as a stream error). */
function discard(body: Body): void {
  body.on('error', () => undefined);
  body.destroy();
}

function isHttp(u: URL): boolean {
  return u.protocol === 'http:' || u.protocol === 'https:';
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = errorCode(err);
  const causeCode = errorCode((err as { cause?: unknown }).cause);
  const parts = [err.message];
  if (code && !err.message.includes(code)) parts.push(code);
  if (causeCode && !err.message.includes(causeCode)) parts.push(causeCode);
  return parts.join(' ');
}

export class WebSeed {
  readonly url: string;
  /** Bytes of piece data received (including pieces that later failed verification). */
  bytesFetched = 0;
  /** The same bytes over the last WEB_SEED_RECENT_MS, as they arrive (its rate lately). */
  readonly recentBytes = new RateWindow(WEB_SEED_RECENT_MS);
  /**
   * Body bytes that count as data for `--timeout`: all of them, except while the seed's last
   * FRUITLESS_FAILURES requests in a row brought bytes and failed with no piece (a reply that
   * always breaks before a piece is whole sends bytes that never make one: they kept a download
   * that got nothing else alive for good). Failures that brought nothing (a 503) do not count.
   */
  progressBytes = 0;
  /** Body bytes of the pieces handed over whole (their padding, never fetched, left out). */
  bytesHanded = 0;
  /** Pieces fetched in full (before verification). */
  piecesFetched = 0;
  /** Failed fetches and bad pieces, in total. */
  failures = 0;
  /** Pieces that failed verification. */
  badPieces = 0;
  /** Set after MAX_BAD_PIECES bad pieces: the seed is never used again. */
  banned = false;
  /** No request before this time (ms, same clock as `now`). */
  backoffUntil = 0;
  /** The last failure, for messages. */
  lastError: WebSeedError | undefined;
  /**
   * The server answered a range with the whole file (HTTP 200: it ignores `Range`, as Python's
   * `http.server` does). Its replies are read from the file's start: bytes before the run are
   * dropped and the run goes on while the following pieces of that file are still needed
   * (`fetchRun`'s `extend`); the scheduler then sends it one request at a time.
   */
  ignoresRanges = false;
  /** Body bytes read and dropped (a server that ignores ranges): before a run, or passed over. */
  bytesSkipped = 0;

  /** Files (multi-file torrents) this seed will not be asked for again: 404, or stale data. */
  private readonly lacking = new Set<number>();
  private consecutiveFailures = 0;
  /** Failed runs in a row that brought body bytes and no piece (see progressBytes). */
  private fruitlessInRow = 0;
  /** Failures that showed a file lacking (`WebSeedError.lackedFile`) since the last piece. */
  private fileFaultsInRow = 0;
  /** When the back-off was last set (see recordFailure). */
  private lastFailureAt = -Infinity;
  private readonly timeoutMs: number;
  private readonly pieceTimeoutMs: number;
  private readonly maxRedirects: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly now: () => number;

  constructor(
    url: string,
    private readonly meta: Metainfo,
    private readonly layout: Layout,
    private readonly opts: WebSeedOptions = {},
  ) {
    this.url = url;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new WebSeedError(url, 'url', 'not a valid URL');
    }
    if (!isHttp(parsed)) {
      throw new WebSeedError(url, 'url', `unsupported scheme ${parsed.protocol}`);
    }
    this.timeoutMs = opts.timeoutMs ?? WEB_SEED_TIMEOUT_MS;
    this.pieceTimeoutMs = opts.pieceTimeoutMs ?? WEB_SEED_PIECE_TIMEOUT_MS;
    this.maxRedirects = opts.maxRedirects ?? MAX_WEB_SEED_REDIRECTS;
    this.backoffBaseMs = opts.backoffBaseMs ?? WEB_SEED_BACKOFF_BASE_MS;
    this.backoffMaxMs = opts.backoffMaxMs ?? WEB_SEED_BACKOFF_MAX_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Files this seed lacks (404) or holds another version of (a bad piece inside one file). */
  get lackingFiles(): ReadonlySet<number> {
    return this.lacking;
  }

  /**
   * Whether this seed should be asked for piece `index`: false when the piece touches a file
   * the seed lacks. Always true for a single-file torrent (a 404 or bad data there only backs
   * the seed off or bans it).
   */
  has(index: number): boolean {
    if (this.lacking.size === 0) return true;
    for (const s of this.layout.spans(index)) {
      if (this.lacking.has(s.fileIndex) && !this.meta.files[s.fileIndex]?.padding) return false;
    }
    return true;
  }

  /** Whether a request may be sent now: not banned and not backed off. */
  available(now = this.now()): boolean {
    return !this.banned && now >= this.backoffUntil;
  }

  /**
   * Fetches piece `index` (not verified: the caller checks its SHA-1). Resolves with a buffer
   * of exactly the piece's size (padding-file bytes are zeros); rejects with a WebSeedError.
   * A failure, other than the caller's abort, backs the seed off.
   */
  async fetchPiece(index: number, signal?: AbortSignal): Promise<Buffer> {
    let piece: Buffer | undefined;
    await this.fetchRun(index, 1, (_i, data) => (piece = data), signal);
    return piece!;
  }

  /**
   * Fetches the `count` consecutive pieces from `first` with as few requests as the files
   * allow (one per file the run touches), handing each piece to `onPiece` as soon as its last
   * byte has arrived (not verified). At most one piece buffer is held at a time. Rejects with a
   * WebSeedError; the pieces handed over before the failure stay handed over, the rest are not
   * delivered. Each piece must arrive within `pieceTimeoutMs` of the previous one (or of the
   * start). A failure, other than the caller's abort, backs the seed off.
   *
   * `extend(index)`, when given, may lengthen the run by the piece after its last one (it
   * returns whether that piece is now part of the run, or `later` when it is needed but cannot
   * be taken yet: the reply is not read meanwhile): used only when the server sends the
   * whole file for a range, so that one reply serves every piece still needed from the run's
   * start on (to the end of that file, in a multi-file torrent) instead of being cut off after
   * the run.
   */
  async fetchRun(
    first: number,
    count: number,
    onPiece: (index: number, data: Buffer, fetched: number) => void,
    signal?: AbortSignal,
    extend?: (index: number) => boolean | 'later',
  ): Promise<void> {
    if (this.banned) throw new WebSeedError(this.url, 'banned', 'banned for sending bad pieces');
    const startedAt = this.now();
    // Body bytes and pieces before this run: a failure that brought bytes and no piece is
    // fruitless (see progressBytes).
    const bytesBefore = this.bytesFetched + this.bytesSkipped;
    const piecesBefore = this.piecesFetched;
    const layout = this.layout;
    let last = first + count - 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`bad piece count ${count}`);
    layout.pieceSize(first); // range checks
    const runLength = () =>
      layout.pieceOffset(last) + layout.pieceSize(last) - layout.pieceOffset(first);
    const ranges = runRanges(this.url, this.meta, layout, first, count);
    const pl = layout.pieceLength;

    const controller = new AbortController();
    let timedOut = false;
    // Time held back by the download limit since the timer was last armed does not count.
    let held = 0;
    let holdingSince: number | undefined;
    const hold = (on: boolean): void => {
      const t = monotonicMs();
      if (holdingSince !== undefined) held += t - holdingSince;
      holdingSince = on ? t : undefined;
    };
    const onTimer = (): void => {
      hold(holdingSince !== undefined);
      if (held >= 1) {
        timer = setTimeout(onTimer, held);
        held = 0;
        return;
      }
      timedOut = true;
      controller.abort();
    };
    let timer = setTimeout(onTimer, this.pieceTimeoutMs);
    const onAbort = (): void => controller.abort();
    if (signal?.aborted) controller.abort();
    else signal?.addEventListener('abort', onAbort, { once: true });

    // The piece being filled; every run position before `cur`'s start has been handed over.
    let cur = first;
    /** Pieces inside the run that a whole-file reply passes over (see `grow`). */
    const passed = new Set<number>();
    let passedBytes = 0;
    // A passed piece's bytes go to one scratch buffer, never handed over: no piece buffer (and
    // no fresh pages) for up to MAX_PASSED_BYTES of bytes that are dropped.
    let scratch: Buffer | null = null;
    const bufferFor = (i: number): Buffer =>
      passed.has(i)
        ? (scratch ??= Buffer.allocUnsafe(pl)).subarray(0, layout.pieceSize(i))
        : Buffer.alloc(layout.pieceSize(i));
    let buf: Buffer = Buffer.alloc(layout.pieceSize(first));
    /** Body bytes received for the piece being filled (its padding, never fetched, left out). */
    let bufBytes = 0;
    /** Hands over every piece that ends at or before run position `pos` (all its bytes are in). */
    const complete = (pos: number): void => {
      while (cur <= last && (cur - first) * pl + layout.pieceSize(cur) <= pos) {
        // onPiece may abort the run (say, after a bad piece): hand nothing more over.
        if (controller.signal.aborted) return;
        const data = buf;
        const fetched = bufBytes;
        const index = cur++;
        buf = cur <= last ? bufferFor(cur) : Buffer.alloc(0);
        bufBytes = 0;
        clearTimeout(timer);
        timer = setTimeout(onTimer, this.pieceTimeoutMs);
        held = 0;
        // A piece passed over in a whole-file reply (not ours: done, or another's) is dropped.
        if (passed.delete(index)) {
          this.bytesFetched -= fetched;
          this.bytesSkipped += fetched;
          continue;
        }
        this.piecesFetched++;
        this.consecutiveFailures = 0;
        this.fruitlessInRow = 0;
        this.fileFaultsInRow = 0;
        this.backoffUntil = 0;
        this.bytesHanded += fetched;
        onPiece(index, data, fetched);
      }
    };
    /** Body bytes for run position `pos`, in increasing order; gaps (padding) stay zeros. */
    const write = (pos: number, chunk: Uint8Array): void => {
      let off = 0;
      while (off < chunk.length) {
        complete(pos + off);
        if (controller.signal.aborted) return;
        const inPiece = pos + off - (cur - first) * pl;
        const n = Math.min(chunk.length - off, buf.length - inPiece);
        buf.set(chunk.subarray(off, off + n), inPiece);
        bufBytes += n;
        off += n;
      }
      // A piece whose last byte this was is handed over now, not when more bytes come: a
      // whole-file reply may wait (`grow`) for the memory it holds.
      complete(pos + chunk.length);
    };

    /**
     * A whole-file reply reached the piece after the run's last one: the run takes it, if
     * `extend` agrees, or passes over it (its bytes read and dropped) to reach later pieces that
     * are still needed, up to MAX_PASSED_BYTES in a row. Returns the bytes the run grew by (0:
     * the reply ends here), or `later` (a piece needed that cannot be taken yet, say while the
     * memory budget is full: better to wait than to drop it and read the file again for it).
     */
    const grow = (): number | 'later' => {
      const next = last + 1;
      if (!extend || next >= layout.pieceCount) return 0;
      const size = layout.pieceSize(next);
      const taken = extend(next);
      if (taken === 'later') return 'later';
      if (taken) {
        passedBytes = 0;
      } else {
        if (passedBytes + size > MAX_PASSED_BYTES) return 0;
        passedBytes += size;
        passed.add(next);
      }
      last = next;
      if (cur === next) buf = bufferFor(next);
      return size;
    };

    /**
     * `grow` for a whole-file reply of a multi-file torrent: its bytes follow the run only where
     * the run ends inside that file (`r` is the run's last range, ending where the run does), and
     * only while the next piece lies wholly inside the file: one that reaches into the next file
     * (or its padding) is asked for with a request of its own.
     */
    const growInFile = (r: FileRange, isLast: boolean) => {
      // Where the file's byte 0 is in the torrent.
      const fileStart = layout.pieceOffset(first) + r.pieceOffset - r.start;
      const fileEnd = fileStart + layout.fileLength(r.fileIndex);
      const runEnd = () => layout.pieceOffset(last) + layout.pieceSize(last);
      const contiguous = isLast && fileStart + r.end === runEnd();
      return (): number | 'later' => {
        const next = last + 1;
        if (!contiguous || next >= layout.pieceCount) return 0;
        if (layout.pieceOffset(next) + layout.pieceSize(next) > fileEnd) return 0;
        return grow();
      };
    };

    try {
      const { request, agent } = await loadUndici();
      const dispatcher = this.opts.dispatcher ?? agent(this.opts.localAddress);
      for (const [k, r] of ranges.entries()) {
        complete(r.pieceOffset);
        const growing = this.meta.multiFile ? growInFile(r, k === ranges.length - 1) : grow;
        await this.fetchRange(request, dispatcher, r, write, controller.signal, hold, growing);
        complete(r.pieceOffset + (r.end - r.start));
      }
      complete(runLength());
      if (controller.signal.aborted) throw new Error('aborted');
    } catch (err) {
      let e: WebSeedError;
      if (signal?.aborted) e = new WebSeedError(this.url, 'aborted', 'aborted', { cause: err });
      else if (timedOut) {
        e = new WebSeedError(
          this.url,
          'timeout',
          `piece ${cur} took more than ${seconds(this.pieceTimeoutMs)}`,
        );
      } else if (err instanceof WebSeedError) e = err;
      else if (err instanceof TdlError || err instanceof RangeError) throw err;
      else e = this.classify(err);
      if (e.fault !== 'aborted') {
        this.recordFailure(e, startedAt);
        const brought = this.bytesFetched + this.bytesSkipped > bytesBefore;
        if (brought && this.piecesFetched === piecesBefore) this.fruitlessInRow++;
      }
      debug('%s: pieces %d..%d failed at %d: %s', this.url, first, last, cur, e.message);
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Piece `index` fetched from this seed failed verification: counts as a failure (back-off)
   * and bans the seed at MAX_BAD_PIECES. In a multi-file torrent, when the piece lies inside
   * one file, the seed is not asked for that file again (it likely holds another version of
   * it, as web servers whose files changed after the torrent was made do). Returns whether the
   * seed is now banned.
   */
  reportBadPiece(index?: number): boolean {
    this.badPieces++;
    if (index !== undefined && this.meta.multiFile) {
      const files = new Set(
        this.layout
          .spans(index)
          .map((s) => s.fileIndex)
          .filter((f) => !this.meta.files[f]?.padding),
      );
      if (files.size === 1) {
        const [file] = files;
        this.lacking.add(file!);
        debug('%s: not asked for file %d again (bad piece %d)', this.url, file, index);
      }
    }
    this.recordFailure(
      new WebSeedError(this.url, 'bad-piece', 'sent a piece that failed verification'),
    );
    if (this.badPieces >= MAX_BAD_PIECES && !this.banned) {
      this.banned = true;
      debug('%s: banned after %d bad pieces', this.url, this.badPieces);
    }
    return this.banned;
  }

  /**
   * `startedAt`: when the failed request was sent. One already in flight when the seed last
   * failed (two requests that fail together) tells nothing new: the back-off is not doubled.
   */
  private recordFailure(err: WebSeedError, startedAt = this.now()): void {
    this.failures++;
    this.lastError = err;
    // A file the seed lacks says nothing about its others: a seed that has sent pieces is asked
    // for them at once (a base URL that is wrong fails every file, and has sent none).
    if (err.lackedFile !== undefined) {
      this.fileFaultsInRow++;
      if (this.piecesFetched > this.badPieces && this.fileFaultsInRow <= FREE_FILE_FAULTS) return;
    }
    if (startedAt < this.lastFailureAt) return;
    this.lastFailureAt = this.now();
    this.consecutiveFailures++;
    // A server that says when to come back (503 or 429 with Retry-After) is not asked sooner,
    // within the longest back-off (a third of --timeout: see backoffCap).
    const delay = Math.min(
      this.backoffMaxMs,
      Math.max(
        this.backoffBaseMs * 2 ** Math.min(this.consecutiveFailures - 1, 30),
        err.retryAfterMs ?? 0,
      ),
    );
    this.backoffUntil = this.now() + delay;
  }

  /** Body bytes of the range, at run position `pos`: written, and counted. */
  private took(chunk: Uint8Array, pos: number, write: (pos: number, chunk: Uint8Array) => void) {
    if (chunk.length === 0) return;
    write(pos, chunk);
    this.bytesFetched += chunk.length;
    if (this.fruitlessInRow < FRUITLESS_FAILURES) this.progressBytes += chunk.length;
    this.recentBytes.add(this.now(), chunk.length);
  }

  /**
   * A failure of undici's in words, as a WebSeedError; `redirectedTo`: the URL a redirect led
   * to, when the failure was there (a user cannot tell where its address came from otherwise).
   */
  private classify(err: unknown, redirectedTo?: string): WebSeedError {
    const code = errorCode(err);
    const fail = (fault: WebSeedFault, text: string) =>
      new WebSeedError(
        this.url,
        fault,
        redirectedTo === undefined ? text : `redirected to ${redirectedTo}: ${text}`,
        { cause: err },
      );
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return fail('timeout', `no data for ${seconds(this.timeoutMs)}`);
    }
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return fail('timeout', 'connect timed out');
    // undici's words are "other side closed".
    if (code === 'UND_ERR_SOCKET') {
      return fail('network', 'the server closed the connection before its reply was complete');
    }
    if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      return fail('length', 'body does not match its Content-Length');
    }
    return fail('network', describe(err));
  }

  /**
   * One range of a run, following redirects. A failure where a redirect led says so, with its
   * target (a refused connect to a port the user never gave).
   */
  private async fetchRange(
    request: Undici['request'],
    dispatcher: Dispatcher,
    r: FileRange,
    write: (pos: number, chunk: Uint8Array) => void,
    signal: AbortSignal,
    hold: (on: boolean) => void,
    grow: () => number | 'later',
  ): Promise<void> {
    let target = r.url;
    try {
      await this.fetchFrom(request, dispatcher, r, write, signal, hold, grow, (t) => (target = t));
    } catch (err) {
      if (target === r.url || err instanceof TdlError || signal.aborted) throw err;
      throw this.classify(err, target);
    }
  }

  /** fetchRange's requests; `moved` is told each new target. */
  private async fetchFrom(
    ...[request, dispatcher, r, write, signal, hold, grow, moved]: [
      ...Parameters<WebSeed['fetchRange']>,
      (target: string) => void,
    ]
  ): Promise<void> {
    const expected = r.end - r.start;
    const fileLength = this.layout.fileLength(r.fileIndex);
    let target = r.url;
    for (let redirects = 0; ; redirects++) {
      debug('GET %s bytes=%d-%d', target, r.start, r.end - 1);
      const res = await request(target, {
        method: 'GET',
        dispatcher,
        // A server that answers with informational replies without end is refused.
        ...informationalLimit(signal, (m) => new WebSeedError(this.url, 'status', m)),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        headers: {
          'user-agent': 'tdl',
          accept: '*/*',
          'accept-encoding': 'identity',
          range: `bytes=${r.start}-${r.end - 1}`,
        },
      });
      const { statusCode, headers, body } = res;
      let reply: Reply;
      try {
        reply = judgeReply(statusCode, headers, {
          seed: this.url,
          target,
          start: r.start,
          end: r.end,
          fileIndex: r.fileIndex,
          fileLength,
          multiFile: this.meta.multiFile,
          now: this.now(),
        });
      } catch (e) {
        discard(body);
        // In a multi-file torrent the server may hold some files and not others.
        if (e instanceof WebSeedError && e.lackedFile !== undefined) this.lacking.add(e.lackedFile);
        throw e;
      }
      if (reply === 'redirect') {
        discard(body);
        target = this.redirectTarget(target, header(headers, 'location'), redirects, statusCode);
        moved(target);
        continue;
      }
      if (reply === 'whole') {
        // The server ignored the Range header and sends the whole file: read from its start.
        if (!this.ignoresRanges) debug('%s: ignores Range, read from the start', this.url);
        this.ignoresRanges = true;
        await this.readInto(body, write, r.pieceOffset, expected, signal, hold, r.start, grow);
        debug('%s: %d bytes dropped before runs so far', this.url, this.bytesSkipped);
        return;
      }
      await this.readInto(body, write, r.pieceOffset, expected, signal, hold);
      return;
    }
  }

  private redirectTarget(
    from: string,
    location: string | undefined,
    redirects: number,
    statusCode: number,
  ): string {
    const next = followRedirect(from, location, statusCode, {
      redirects,
      max: this.maxRedirects,
      noDowngrade: true,
    });
    if ('refused' in next) throw new WebSeedError(this.url, 'redirect', next.refused);
    // An address of the other family than --bind: the connect would fail with the system's
    // "bind EINVAL", which names neither the redirect nor --bind.
    const far = otherFamily(new URL(next.url), this.opts.localAddress);
    if (far !== undefined) {
      throw new WebSeedError(this.url, 'redirect', `redirected to ${next.url}: ${far}`);
    }
    debug('%s: redirected (%d) to %s', from, statusCode, next.url);
    return next.url;
  }

  /**
   * Passes exactly `expected` body bytes to `write`; any other length is a fault. A body that
   * starts `skip` bytes early (the whole file, for a server that ignores ranges) has those
   * bytes dropped, and goes on past `expected` while `grow` lengthens the run (by the bytes it
   * returns); once it does not, the rest is not read.
   */
  private async readInto(
    body: Body,
    write: (pos: number, chunk: Uint8Array) => void,
    offset: number,
    expected: number,
    signal: AbortSignal,
    hold: (on: boolean) => void,
    skip = 0,
    grow: (() => number | 'later') | null = null,
  ): Promise<void> {
    const limit = this.opts.limit;
    let got = 0;
    let toSkip = skip;
    for await (const whole of body as AsyncIterable<Uint8Array>) {
      let chunk = whole;
      if (toSkip > 0) {
        const n = Math.min(toSkip, chunk.length);
        toSkip -= n;
        this.bytesSkipped += n;
        chunk = chunk.subarray(n);
      }
      let ended = false;
      if (grow) {
        // The bytes the run holds are written first, then the run grows by a piece (or ends) for
        // the rest of the chunk, and so on: each piece is delivered before the next is asked
        // for, and frees the memory that taking it may wait for (`later`). Asked for before the
        // chunk was written, a piece as large as the memory budget waited on itself for good.
        for (;;) {
          const head = Math.min(chunk.length, expected - got);
          if (head > 0) {
            this.took(chunk.subarray(0, head), offset + got, write);
            got += head;
            chunk = chunk.subarray(head);
          }
          if (chunk.length === 0) break;
          const more = grow();
          if (more === 'later') {
            // The body is not read meanwhile (undici pauses the socket).
            hold(true);
            try {
              await sleep(GROW_RETRY_MS, undefined, { signal });
            } finally {
              hold(false);
            }
            continue;
          }
          // The run ends inside this chunk: the rest of the file is not needed from this reply.
          if (more === 0) {
            chunk = chunk.subarray(chunk.length);
            ended = true;
            break;
          }
          expected += more;
        }
      } else if (got + chunk.length > expected) {
        // Cut off at once: the range's own bytes are kept (each piece is verified anyway) and
        // the rest is not read. Taken for a failure, the range's last piece was dropped with
        // it, and a server that always sent a byte too many never completed one.
        this.took(chunk.subarray(0, expected - got), offset + got, write);
        discard(body);
        debug('%s: body longer than the %d bytes asked for: cut off', this.url, expected);
        return;
      }
      if (chunk.length > 0) {
        this.took(chunk, offset + got, write);
        got += chunk.length;
      }
      if (ended) {
        discard(body);
        break;
      }
      if (limit) {
        limit.onRead(whole.length);
        // The body is not read meanwhile: undici pauses the socket (its body timeout with it).
        for (let ms = limit.waitMs(); ms > 0; ms = limit.waitMs()) {
          hold(true);
          try {
            await sleep(ms, undefined, { signal });
          } finally {
            hold(false);
          }
        }
      }
    }
    if (got !== expected) {
      throw new WebSeedError(this.url, 'length', `body of ${got} bytes, ${expected} expected`);
    }
  }
}
