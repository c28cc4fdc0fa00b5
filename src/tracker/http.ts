/**
 * HTTP(S) tracker client (BEP 3, BEP 23 compact peers, BEP 7 peers6).
 *
 * Trackers are untrusted: the whole announce is bounded by a timeout (connect, headers and a
 * body that never ends included), the body is read up to MAX_TRACKER_BODY_BYTES and the
 * stream is aborted as soon as that cap is crossed, redirects are followed by hand (at most
 * MAX_TRACKER_REDIRECTS, http/https only), and every failure is a TrackerError naming the
 * tracker URL.
 *
 * The transport is Node's own `node:http`/`node:https` (one connection per request, closed after
 * it; headers capped at Node's 16 KiB): an announce is a single GET, and undici would cost a
 * download about 0.1 s of CPU to load before its first announce (docs/DESIGN.md, "Start-up").
 */
import { logger } from '../log.js';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import type { Socket } from 'node:net';
import { decodeStrict, isDict, isList, type BDict, type BValue } from '../metainfo/bencode.js';
import { describeError, TdlError, TrackerError } from '../errors.js';
import {
  followRedirect,
  MAX_INFORMATIONAL_REPLIES,
  percentEncodeBytes,
  REDIRECT_STATUSES,
  TOO_MANY_INFORMATIONAL,
} from '../http.js';
import { PeerCollector, clampInterval, familyOfIp } from './compact.js';
import type { AnnounceOptions, AnnounceRequest, AnnounceResponse } from './types.js';

export { MAX_PEERS_PER_REPLY } from './compact.js';

const debug = logger('tdl:http-tracker');

/** Default bound on one whole HTTP announce (connect, redirects, headers and body). */
export const HTTP_TRACKER_TIMEOUT_MS = 10_000;
/** Bound on establishing the TCP/TLS connection. */
export const HTTP_CONNECT_TIMEOUT_MS = 5_000;
/** Largest tracker reply body read; the stream is aborted once it goes past this. */
export const MAX_TRACKER_BODY_BYTES = 1024 * 1024;
/** Redirects followed at most (only to http: and https:). */
export const MAX_TRACKER_REDIRECTS = 3;
/** Longest failure reason / warning message kept (characters). */
export const MAX_TRACKER_MESSAGE_CHARS = 1024;
/** Longest `tracker id` kept (bytes); a longer one is ignored, as a cut one would be wrong. */
export const MAX_TRACKER_ID_BYTES = 256;

type Get = (url: URL, opts: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest;
// node:http and node:https are loaded on the first announce that needs them: a download from
// UDP trackers or known peers never pays for them.
let httpGet: Promise<Get> | null = null;
let httpsGet: Promise<Get> | null = null;
function loadGet(protocol: string): Promise<Get> {
  if (protocol === 'https:') return (httpsGet ??= import('node:https').then((m) => m.get));
  return (httpGet ??= import('node:http').then((m) => m.get));
}

/**
 * Start loading the HTTP client(s) these tracker URLs need (node:http, node:https) now, so
 * that the first announce does not wait for them: called when a download starts.
 */
export function preloadHttpClient(urls: readonly string[]): void {
  for (const protocol of ['http:', 'https:']) {
    if (!urls.some((u) => u.slice(0, protocol.length).toLowerCase() === protocol)) continue;
    loadGet(protocol).catch(() => {
      if (protocol === 'https:') httpsGet = null;
      else httpGet = null;
    });
  }
}

function nonNegativeInt(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0';
  return Math.trunc(n).toString();
}

/**
 * Builds the announce URL: the tracker URL (any fragment removed) followed by the query
 * parameters, appended with `&` when the URL already has a query string.
 */
export function buildAnnounceUrl(trackerUrl: string, req: AnnounceRequest): string {
  let base = trackerUrl;
  const hash = base.indexOf('#');
  if (hash >= 0) base = base.slice(0, hash);
  const params = [
    `info_hash=${percentEncodeBytes(req.infoHash)}`,
    `peer_id=${percentEncodeBytes(req.peerId)}`,
    `port=${nonNegativeInt(req.port)}`,
    `uploaded=${nonNegativeInt(req.uploaded)}`,
    `downloaded=${nonNegativeInt(req.downloaded)}`,
    `left=${nonNegativeInt(req.left)}`,
    'compact=1',
  ];
  if (req.event) params.push(`event=${req.event}`);
  if (req.numWant !== undefined) params.push(`numwant=${nonNegativeInt(req.numWant)}`);
  if (req.key !== undefined) {
    params.push(`key=${(req.key >>> 0).toString(16).toUpperCase().padStart(8, '0')}`);
  }
  if (req.trackerId !== undefined) params.push(`trackerid=${percentEncodeBytes(req.trackerId)}`);
  let sep: string;
  if (!base.includes('?')) sep = '?';
  else if (base.endsWith('?') || base.endsWith('&')) sep = '';
  else sep = '&';
  return base + sep + params.join('&');
}

function text(v: BValue | undefined): string | undefined {
  if (!Buffer.isBuffer(v)) return undefined;
  const s = v.toString('utf8');
  return s.length > MAX_TRACKER_MESSAGE_CHARS ? s.slice(0, MAX_TRACKER_MESSAGE_CHARS) : s;
}

function int(v: BValue | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function nonNegative(v: BValue | undefined): number | undefined {
  const n = int(v);
  return n !== undefined && n >= 0 ? n : undefined;
}

/**
 * Parses a tracker reply body. Throws TrackerError on a `failure reason` (its message contains
 * the raw reason) or on a body that is not a bencoded dictionary.
 *
 * Peers: compact IPv4 `peers` (6 bytes each), compact IPv6 `peers6` (18 bytes each) and the
 * dictionary form (a list of dictionaries with `ip` and `port`; malformed entries and
 * non-IP hosts are skipped). A compact string whose length is not a multiple of the entry
 * size is truncated to its complete entries. Port 0 and duplicate entries are dropped, and at
 * most MAX_PEERS_PER_REPLY peers are kept. `interval` defaults to 1800 s and is clamped to
 * [1 s, 24 h]; `min interval` is clamped to [0, interval]. `tracker id` is kept as bytes (an
 * empty one, one over MAX_TRACKER_ID_BYTES or one that is not a string is ignored).
 */
export function parseHttpResponse(body: Buffer, peersFrom = 0): AnnounceResponse {
  // Tolerate trailing whitespace after the top-level dictionary (some trackers add a newline).
  let end = body.length;
  if (body[0] === 0x64) {
    while (end > 0 && (body[end - 1] === 0x0a || body[end - 1] === 0x0d || body[end - 1] === 0x20))
      end--;
  }
  let value: BValue;
  try {
    value = decodeStrict(body.subarray(0, end)).value;
  } catch (err) {
    // tdl asks for no compression; a tracker that compresses anyway is named as doing so.
    if (body[0] === 0x1f && body[1] === 0x8b) {
      throw new TrackerError('reply is gzip-compressed, which tdl did not ask for', { cause: err });
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw new TrackerError(`reply is not valid bencode (${reason})`, { cause: err });
  }
  if (!isDict(value)) throw new TrackerError('reply is not a bencoded dictionary');
  const d: BDict = value;

  const failure = d['failure reason'];
  if (failure !== undefined) {
    throw new TrackerError(`tracker failure: ${text(failure) ?? '(unreadable reason)'}`);
  }

  const collector = new PeerCollector(undefined, peersFrom);
  const peers = d['peers'];
  if (Buffer.isBuffer(peers)) {
    collector.addCompact4(peers);
  } else if (isList(peers)) {
    for (const i of collector.order(peers.length)) {
      const entry = peers[i];
      if (!isDict(entry)) continue;
      const ip = text(entry['ip']);
      const port = int(entry['port']);
      if (ip === undefined || port === undefined) continue;
      collector.addText(ip, port);
    }
  }
  const peers6 = d['peers6'];
  if (Buffer.isBuffer(peers6)) collector.addCompact6(peers6);

  const interval = clampInterval(int(d['interval']));
  const res: AnnounceResponse = { interval, peers: collector.peers };
  // Peers of another type are no peers, but not silently: the user sees why none came.
  const unusable = [
    peers !== undefined && !Buffer.isBuffer(peers) && !isList(peers)
      ? '`peers` is neither a string of addresses nor a list'
      : '',
    peers6 !== undefined && !Buffer.isBuffer(peers6) ? '`peers6` is not a string of addresses' : '',
  ].filter((k) => k !== '');
  if (unusable.length > 0) res.malformed = `its reply's ${unusable.join(', and ')} (ignored)`;
  const minInterval = int(d['min interval']);
  if (minInterval !== undefined) res.minInterval = Math.max(0, Math.min(interval, minInterval));
  const warning = text(d['warning message']);
  if (warning !== undefined) res.warning = warning;
  const complete = nonNegative(d['complete']);
  if (complete !== undefined) res.complete = complete;
  const incomplete = nonNegative(d['incomplete']);
  if (incomplete !== undefined) res.incomplete = incomplete;
  const trackerId = d['tracker id'];
  if (
    Buffer.isBuffer(trackerId) &&
    trackerId.length > 0 &&
    trackerId.length <= MAX_TRACKER_ID_BYTES
  ) {
    // A copy: a view would keep the whole reply body alive for as long as the id is kept.
    res.trackerId = Buffer.from(trackerId);
  }
  return res;
}

/** Ends a response body we will not read (and its connection). */
function discard(body: IncomingMessage): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Reads at most `cap` bytes from the body; destroys the stream once it crosses the cap. */
async function readCapped(body: IncomingMessage, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > cap) {
      discard(body);
      throw new TrackerError(`reply body is larger than ${cap} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

function parseHttpUrl(raw: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TrackerError(`${what} is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new TrackerError(`${what} has unsupported scheme ${u.protocol}`);
  }
  return u;
}

/**
 * One GET: resolves with the response (its body unread) once the headers are in. The connection
 * must be made within HTTP_CONNECT_TIMEOUT_MS (TLS included); `signal` bounds everything else.
 */
async function get(url: URL, signal: AbortSignal, localAddress?: string): Promise<IncomingMessage> {
  const fetch = await loadGet(url.protocol);
  signal.throwIfAborted();
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = fetch(
      url,
      {
        agent: false, // no pooling: `Connection: close`, the socket goes with the request
        signal,
        headers: { 'user-agent': 'tdl', accept: '*/*' },
        ...(localAddress === undefined ? {} : { localAddress, family: familyOfIp(localAddress) }),
      },
      resolve,
    );
    req.on('error', reject);
    let informational = 0;
    req.on('information', () => {
      if (++informational > MAX_INFORMATIONAL_REPLIES) {
        req.destroy(new TrackerError(TOO_MANY_INFORMATIONAL));
      }
    });
    req.once('socket', (sock: Socket) => {
      if (!sock.connecting) return;
      const timer = setTimeout(() => {
        req.destroy(new TrackerError(`no connection within ${HTTP_CONNECT_TIMEOUT_MS} ms`));
      }, HTTP_CONNECT_TIMEOUT_MS);
      timer.unref();
      const done = () => clearTimeout(timer);
      sock.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', done);
      sock.once('close', done);
    });
  });
}

async function announceOnce(
  trackerUrl: string,
  req: AnnounceRequest,
  signal: AbortSignal,
  localAddress: string | undefined,
  peersFrom: number | undefined,
): Promise<AnnounceResponse> {
  parseHttpUrl(trackerUrl, 'tracker URL');
  let target = buildAnnounceUrl(trackerUrl, req);
  for (let redirects = 0; ; redirects++) {
    debug('GET %s', target);
    const res = await get(parseHttpUrl(target, 'announce URL'), signal, localAddress);
    const statusCode = res.statusCode ?? 0;
    const { headers } = res;
    if (REDIRECT_STATUSES.has(statusCode)) {
      discard(res);
      const next = followRedirect(target, headers.location, statusCode, {
        redirects,
        max: MAX_TRACKER_REDIRECTS,
      });
      if ('refused' in next) throw new TrackerError(next.refused);
      target = next.url;
      debug('%s: redirected (%d) to %s', trackerUrl, statusCode, target);
      continue;
    }
    if (statusCode !== 200) {
      discard(res);
      throw new TrackerError(`HTTP status ${statusCode}`);
    }
    const declared = Number(headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_TRACKER_BODY_BYTES) {
      discard(res);
      throw new TrackerError(`reply body is larger than ${MAX_TRACKER_BODY_BYTES} bytes`);
    }
    const buf = await readCapped(res, MAX_TRACKER_BODY_BYTES);
    return parseHttpResponse(buf, peersFrom);
  }
}

/**
 * Announces to an http:// or https:// tracker. Resolves with the parsed reply; rejects with a
 * TrackerError whose message starts with the tracker URL on any failure (network, timeout,
 * HTTP status, oversized or malformed body, `failure reason`).
 */
export async function announceHttp(
  url: string,
  req: AnnounceRequest,
  opts: AnnounceOptions = {},
): Promise<AnnounceResponse> {
  const timeoutMs = opts.timeoutMs ?? HTTP_TRACKER_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  timer.unref();
  const onAbort = (): void => controller.abort();
  if (opts.signal?.aborted) controller.abort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  const started = Date.now();
  try {
    const res = await announceOnce(url, req, controller.signal, opts.localAddress, opts.peersFrom);
    debug(
      '%s: %d peers, interval %ds (%dms)',
      url,
      res.peers.length,
      res.interval,
      Date.now() - started,
    );
    return res;
  } catch (err) {
    let message: string;
    if (timedOut) message = `timed out after ${timeoutMs} ms`;
    else if (opts.signal?.aborted) message = 'announce aborted';
    else if (err instanceof TdlError) message = err.message;
    else message = describeError(err);
    debug('%s: failed: %s', url, message);
    throw new TrackerError(`tracker ${url}: ${message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
