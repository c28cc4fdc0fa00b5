/**
 * Where a .torrent comes from: a file (or a named pipe), stdin (`-`) or an http(s) URL. Every
 * source is capped at MAX_TORRENT_FILE_BYTES before it is held in memory and parsed by the same
 * strict parser; a URL is fetched within TORRENT_FETCH_TIMEOUT_MS (connection, redirects, headers
 * and body included), following at most MAX_TORRENT_REDIRECTS redirects, to http: and https: only.
 * A gzip or deflate body (a server may compress what it was not asked to) is decoded, the cap
 * then applying to the decoded bytes.
 */
import { constants, fstatSync, openSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { logger } from '../log.js';
import {
  BencodeError,
  describeError,
  MetainfoError,
  systemErrorText,
  TdlError,
  UsageError,
} from '../errors.js';
import { followRedirect, informationalLimit, REDIRECT_STATUSES } from '../http.js';
import { printable } from './format.js';
import { otherFamily } from '../tracker/compact.js';
import { familyOfIp } from '../tracker/compact.js';
import type { CliIO } from './program.js';
import { MAX_TORRENT_FILE_BYTES, parseTorrent, type Metainfo } from '../metainfo/torrent.js';

const debug = logger('tdl:torrent');

/** Bound on fetching a .torrent from a URL, everything included. */
export const TORRENT_FETCH_TIMEOUT_MS = 30_000;
/** Redirects followed at most (only to http: and https:). */
export const MAX_TORRENT_REDIRECTS = 5;

/** A readable stream of bytes, as process.stdin is. */
export type ByteStream = AsyncIterable<Buffer | string> & {
  isTTY?: boolean;
  destroy?(err?: Error): unknown;
};

export interface LoadOptions {
  /** What `-` reads (process.stdin by default). */
  stdin?: ByteStream;
  /** Ends a read from stdin or a URL early (Ctrl-C). */
  signal?: AbortSignal;
  /** Bound on fetching a URL (TORRENT_FETCH_TIMEOUT_MS by default). */
  timeoutMs?: number;
  /** A URL is fetched from this address (`--bind`). */
  localAddress?: string;
}

/** How a refusal names `source`, first (README: its file, `stdin` or its URL). */
function shownSource(source: string): string {
  return source === '-' ? 'stdin' : printable(source);
}

/** A source over the cap, named as a refusal of its content would name it. */
function tooLarge(source: string, size?: number): MetainfoError {
  const cap = `over the ${MAX_TORRENT_FILE_BYTES} bytes a .torrent may have`;
  return new MetainfoError(shownSource(source), size === undefined ? cap : `${size} bytes, ${cap}`);
}

/**
 * Read and parse a .torrent: `-` reads stdin, `http://` and `https://` fetch the URL, anything
 * else is a file path (`./-` for a file named `-`). Oversized sources are refused before they
 * are read whole.
 */
export async function loadTorrent(source: string, o: LoadOptions = {}): Promise<Metainfo> {
  return parseTorrentFrom(await loadTorrentBytes(source, o), source);
}

/**
 * parseTorrent, its refusal naming where the bytes came from (a script going through many
 * torrents is told which one is bad): `x.torrent: info.pieces: missing`, `stdin: …`.
 */
export function parseTorrentFrom(bytes: Buffer, source: string): Metainfo {
  try {
    return parseTorrent(bytes);
  } catch (e) {
    if (e instanceof TdlError && e.kind === 'invalid-torrent') {
      const what = e instanceof BencodeError && e.offset === 0 ? notTorrent(bytes) : undefined;
      e.message = `${shownSource(source)}: ${what === undefined ? '' : `not a .torrent file, ${what}: `}${e.message}`;
    }
    throw e;
  }
}

/**
 * What bytes that are not bencode at all look like, when it is something people get in place
 * of a .torrent: a web page (a login or error page saved under the torrent's name), a body
 * still gzip-compressed, JSON, a magnet link saved as text.
 */
/** The bytes notTorrent looks at. */
const NOT_TORRENT_HEAD = 64;

function notTorrent(bytes: Buffer): string | undefined {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'it is gzip-compressed (gunzip it first)';
  const head = bytes
    .subarray(0, NOT_TORRENT_HEAD)
    .toString('latin1')
    .replace(/^\xef\xbb\xbf/, '')
    .trimStart();
  if (head.startsWith('<')) return 'it looks like a web page (a login or error page?)';
  if (/^magnet:/i.test(head)) return 'it holds a magnet link (give the link itself, quoted)';
  if (head.startsWith('{') || head.startsWith('[')) return 'it looks like JSON';
  return undefined;
}

/** The bytes of a .torrent from `source`, as loadTorrent reads them (not parsed). */
export async function loadTorrentBytes(source: string, o: LoadOptions = {}): Promise<Buffer> {
  if (source === '-') return readStdin(o.stdin ?? process.stdin, o.signal);
  if (/^https?:\/\//i.test(source)) return fetchTorrent(source, o);
  if (/^magnet:/i.test(source)) {
    // Only `verify` gets here with one (the other commands open magnet links themselves).
    throw new UsageError(
      'this command needs the .torrent, not a magnet link ' +
        "(tdl download --save-torrent FILE keeps a magnet link's metadata as one)",
    );
  }
  const scheme = /^([a-z][a-z0-9+.-]+):\/\//i.exec(source)?.[1];
  if (scheme)
    throw new UsageError(`${source}: unsupported scheme ${scheme}: (http: and https: only)`);
  return readTorrentFile(source, o.signal);
}

async function readTorrentFile(file: string, signal?: AbortSignal): Promise<Buffer> {
  let size: number;
  try {
    const st = await stat(file);
    // A named pipe (`tdl info <(curl -s …)`) is read as stdin is: capped as it streams.
    if (st.isFIFO()) return await readPipe(file, signal);
    if (!st.isFile()) throw new UsageError(`${file} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof TdlError || signal?.aborted) throw e;
    throw new UsageError(`cannot read ${file}: ${systemErrorText(e)}`);
  }
  if (size > MAX_TORRENT_FILE_BYTES) throw tooLarge(file, size);
  try {
    return await readFile(file);
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${systemErrorText(e)}`);
  }
}

/** Reads a stream to its end, refusing it as soon as it goes past the cap. */
async function readCapped(
  stream: AsyncIterable<Buffer | string | Uint8Array>,
  source: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
    total += b.length;
    // Leaving the loop ends (destroys) the stream: nothing more is read.
    if (total > MAX_TORRENT_FILE_BYTES) throw tooLarge(source);
    chunks.push(b);
    // A .torrent is a dictionary: input that does not start with `d` is refused from its first
    // bytes (notTorrent reads 64 of them), not after up to 64 MiB of it (`yes | tdl info -`).
    if (total >= NOT_TORRENT_HEAD && chunks[0]![0] !== 0x64) break;
  }
  return Buffer.concat(chunks, total);
}

/**
 * Reads the named pipe `file` to its end, within the cap, waiting for a writer. The pipe is
 * opened without waiting (O_NONBLOCK) and read through the event loop: a blocking open would
 * wait for the writer in a thread of libuv's pool that nothing can take back, and the process
 * could then not exit (Node joins those threads at exit), Ctrl-C or not. Linux reports no
 * hang-up on a FIFO until a writer has come and gone, so the read waits for one.
 */
async function readPipe(file: string, signal?: AbortSignal): Promise<Buffer> {
  if (signal?.aborted) throw signal.reason;
  let stream: Socket;
  try {
    const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    stream = new Socket({ fd, readable: true, writable: false });
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${systemErrorText(e)}`);
  }
  stream.on('error', () => {}); // reported through the read below
  let onAbort = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([readCapped(stream, file), aborted]);
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (e instanceof TdlError) throw e;
    throw new UsageError(`cannot read ${file}: ${describeError(e)}`);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}

async function readStdin(stdin: ByteStream, signal?: AbortSignal): Promise<Buffer> {
  if (stdin.isTTY) {
    throw new UsageError('`-` reads the .torrent from stdin, which is a terminal: pipe it in');
  }
  // Node's stream of a folder (`< dir`) just ends, which would read as an empty torrent.
  const fd = (stdin as { fd?: unknown }).fd;
  if (typeof fd === 'number' && fstatOrNull(fd)?.isDirectory()) {
    throw new UsageError('cannot read the .torrent from stdin: it is a folder');
  }
  const onAbort = () => stdin.destroy?.(signal?.reason as Error);
  if (signal?.aborted) throw signal.reason;
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await readCapped(stdin, '-');
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (e instanceof TdlError) throw e;
    throw new UsageError(`cannot read the .torrent from stdin: ${describeError(e)}`);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

async function fetchTorrent(url: string, o: LoadOptions): Promise<Buffer> {
  if (o.signal?.aborted) throw o.signal.reason;
  const timeoutMs = o.timeoutMs ?? TORRENT_FETCH_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await fetchOnce(url, controller.signal, timeoutMs, o.localAddress);
  } catch (e) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (e instanceof MetainfoError) throw e;
    let why: string;
    let from = '';
    if (timedOut) why = `no complete answer within ${timeoutMs} ms`;
    else if (e instanceof TdlError) why = e.message;
    else {
      why = describeError(e);
      // A system error of the connection (EADDRNOTAVAIL: not an address of this machine).
      if (o.localAddress !== undefined) from = ` from --bind ${o.localAddress}`;
    }
    debug('%s: %s', url, why);
    throw new UsageError(`cannot fetch ${url}${from}: ${why}`, { cause: e });
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

async function fetchOnce(
  url: string,
  signal: AbortSignal,
  timeoutMs: number,
  localAddress: string | undefined,
): Promise<Buffer> {
  const { request, Agent } = await import('undici');
  // From the --bind address: its own Agent, closed with the fetch.
  const dispatcher =
    localAddress === undefined
      ? undefined
      : new Agent({ localAddress, connect: { family: familyOfIp(localAddress) } });
  try {
    return await fetchFrom(url, signal, timeoutMs, request, dispatcher, localAddress);
  } finally {
    void dispatcher?.close();
  }
}

async function fetchFrom(
  url: string,
  signal: AbortSignal,
  timeoutMs: number,
  request: (typeof import('undici'))['request'],
  dispatcher: import('undici').Dispatcher | undefined,
  localAddress: string | undefined,
): Promise<Buffer> {
  let target = url;
  for (let redirects = 0; ; redirects++) {
    // An address of the other family than --bind: the connect would fail with the system's
    // "invalid argument (EINVAL)", which names neither.
    const far = otherFamily(new URL(target), localAddress);
    if (far !== undefined) {
      throw new UsageError(target === url ? far : `redirected to ${target}: ${far}`);
    }
    debug('GET %s', target);
    const { statusCode, headers, body } = await request(target, {
      method: 'GET',
      // A server that answers with informational replies without end is refused.
      ...informationalLimit(signal, (m) => new UsageError(m)),
      ...(dispatcher === undefined ? {} : { dispatcher }),
      reset: true,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      headers: { 'user-agent': 'tdl', accept: 'application/x-bittorrent, */*' },
    });
    try {
      if (REDIRECT_STATUSES.has(statusCode)) {
        const loc = headers['location'];
        const next = followRedirect(target, Array.isArray(loc) ? loc[0] : loc, statusCode, {
          redirects,
          max: MAX_TORRENT_REDIRECTS,
        });
        if ('refused' in next) throw new UsageError(next.refused);
        target = next.url;
        continue;
      }
      if (statusCode !== 200) throw new UsageError(`HTTP status ${statusCode}`);
      const lenHeader = headers['content-length'];
      const declared = Number(Array.isArray(lenHeader) ? lenHeader[0] : lenHeader);
      if (Number.isFinite(declared) && declared > MAX_TORRENT_FILE_BYTES) {
        throw tooLarge(url, declared);
      }
      const encHeader = headers['content-encoding'];
      const encoding = (Array.isArray(encHeader) ? encHeader.join(',') : (encHeader ?? ''))
        .trim()
        .toLowerCase();
      if (encoding === '' || encoding === 'identity') return await readCapped(body, url);
      if (encoding !== 'gzip' && encoding !== 'x-gzip' && encoding !== 'deflate') {
        throw new UsageError(`unsupported Content-Encoding ${encoding}`);
      }
      // node:zlib is loaded here only: about 4 ms of every start otherwise (docs/DESIGN.md,
      // "Start-up and the shipped bundle").
      const zlib = process.getBuiltinModule('node:zlib');
      const decoder = encoding === 'deflate' ? zlib.createInflate() : zlib.createGunzip();
      // An error on either side destroys both; the read below then fails with it.
      pipeline(body, decoder, () => undefined);
      try {
        return await readCapped(decoder, url);
      } finally {
        decoder.destroy();
      }
    } finally {
      // A body not read to its end is dropped, not left to hold the connection.
      if (!body.readableEnded) {
        body.on('error', () => undefined);
        body.destroy();
      }
    }
  }
}

/** Writes the torrent's warnings to stderr as `tdl: warning: ...` lines. */
export function printMetainfoWarnings(m: Metainfo, io: CliIO): void {
  for (const w of m.warnings) io.stderr.write(`tdl: warning: ${printable(w)}\n`);
}

function fstatOrNull(fd: number): Stats | null {
  try {
    return fstatSync(fd);
  } catch {
    return null;
  }
}
