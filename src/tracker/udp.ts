/**
 * UDP tracker client (BEP 15) over `dgram`.
 *
 * One announce = connect then announce, on a socket of its own connected to the tracker's
 * address so that only its datagrams are received. The connection id is used on that socket
 * only (for the retries of that announce, within its one-minute lifetime), never in a later
 * announce: that one goes out from another source port, and trackers may tie the id to the
 * address and port it was sent to (Torrust does, answers an error for another port, and bans
 * an address after 10 such errors). Replies with another transaction id, short packets and
 * unknown actions are ignored (we keep waiting). Lost requests are retransmitted on a schedule
 * much shorter than the spec's 15·2^n seconds so that a dead tracker cannot stall a download:
 * waits of UDP_RETRY.firstWaitMs, doubling up to UDP_RETRY.maxWaitMs, for UDP_RETRY.maxTries
 * tries in all (2 + 4 + 8 + 8 = 22 s by default), overridable per call. An error reply
 * (action 3) rejects with a TrackerError carrying the tracker's message.
 */
import type dgram from 'node:dgram';
import { logger } from '../log.js';
import { describeError, TdlError, TrackerError } from '../errors.js';
import {
  decodeUdpReply,
  encodeAnnounceRequest,
  encodeConnectRequest,
  urlDataOf,
  urlDataProblem,
  type UdpReply,
} from './udp-codec.js';
import type { AnnounceOptions, AnnounceRequest, AnnounceResponse } from './types.js';
import { familyOfIp } from './compact.js';

const debug = logger('tdl:udp-tracker');

export interface UdpRetryOptions {
  /** Wait for the first reply before retransmitting. */
  firstWaitMs?: number;
  /** Longest single wait (the wait doubles after each retransmission up to this). */
  maxWaitMs?: number;
  /** Requests sent in all (first send included) before giving up. */
  maxTries?: number;
}

/** Default retransmission schedule (see the module comment). */
export const UDP_RETRY: Readonly<Required<UdpRetryOptions>> = Object.freeze({
  firstWaitMs: 2_000,
  maxWaitMs: 8_000,
  maxTries: 4,
});

/** A connection id is used for this long after it was received (BEP 15: one minute). */
export const UDP_CONNECTION_ID_TTL_MS = 60_000;

export type UdpAnnounceOptions = AnnounceOptions & { retry?: UdpRetryOptions };

function parseUdpUrl(url: string): { host: string; port: number; urlData: Buffer } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TrackerError('tracker URL is not a valid URL');
  }
  if (u.protocol !== 'udp:') throw new TrackerError(`unsupported scheme ${u.protocol}`);
  let host = u.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(u.port);
  if (!host) throw new TrackerError('tracker URL has no host');
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TrackerError('tracker URL has no port');
  }
  const tooLong = urlDataProblem(u);
  if (tooLong) throw new TrackerError(`tracker URL: ${tooLong}`);
  return { host, port, urlData: urlDataOf(u) };
}

function randomTransactionId(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

/** Total worst-case time of a retry schedule (sum of all waits). */
export function udpRetryBudgetMs(retry: UdpRetryOptions = {}): number {
  const r = { ...UDP_RETRY, ...retry };
  let total = 0;
  for (let n = 0; n < r.maxTries; n++) total += Math.min(r.firstWaitMs * 2 ** n, r.maxWaitMs);
  return total;
}

/**
 * Announces to a udp:// tracker. Resolves with the reply; rejects with a TrackerError whose
 * message starts with the tracker URL (timeout after the retry schedule, error reply, DNS or
 * socket failure, abort).
 */
export async function announceUdp(
  url: string,
  req: AnnounceRequest,
  opts: UdpAnnounceOptions = {},
): Promise<AnnounceResponse> {
  const started = Date.now();
  try {
    const res = await announceUdpInner(url, req, opts);
    debug(
      '%s: %d peers, interval %ds (%dms)',
      url,
      res.peers.length,
      res.interval,
      Date.now() - started,
    );
    return res;
  } catch (err) {
    const message = err instanceof TdlError ? err.message : describeError(err);
    debug('%s: failed: %s', url, message);
    throw new TrackerError(`tracker ${url}: ${message}`, { cause: err });
  }
}

async function announceUdpInner(
  url: string,
  req: AnnounceRequest,
  opts: UdpAnnounceOptions,
): Promise<AnnounceResponse> {
  const { host, port, urlData } = parseUdpUrl(url);
  const retry = { ...UDP_RETRY, ...opts.retry };
  const timeoutMs = opts.timeoutMs ?? udpRetryBudgetMs(retry) + 1_000;

  // Every wait below races against `failure`, rejected by the deadline, an abort or a
  // socket error.
  let fail!: (err: Error) => void;
  const failure = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failure.catch(() => undefined);
  const deadline = setTimeout(
    () => fail(new TrackerError(`timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = (): void => fail(new TrackerError('announce aborted'));
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  let socket: dgram.Socket | undefined;
  let waitTimer: NodeJS.Timeout | undefined;
  try {
    const local = opts.localAddress;
    // Loaded at the first UDP announce: a download without UDP trackers or the DHT never needs
    // them (docs/DESIGN.md, "Start-up and the shipped bundle").
    const { lookup } = await import('node:dns/promises');
    const addr = await Promise.race([
      local === undefined ? lookup(host) : lookup(host, { family: familyOfIp(local) }),
      failure,
    ]);
    const family: 4 | 6 = addr.family === 6 ? 6 : 4;
    const sock = process
      .getBuiltinModule('node:dgram')
      .createSocket(family === 6 ? 'udp6' : 'udp4');
    socket = sock;
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') fail(new TrackerError('port unreachable (ECONNREFUSED)'));
      else fail(new TrackerError(`socket error: ${describeError(err)}`));
    });
    if (local !== undefined) {
      // From the --bind address (before connect, which would bind to any address).
      await Promise.race([
        new Promise<void>((resolve) => sock.bind({ address: local, port: 0 }, () => resolve())),
        failure,
      ]);
    }
    await Promise.race([
      new Promise<void>((resolve) => sock.connect(port, addr.address, () => resolve())),
      failure,
    ]);
    debug('%s: socket connected to %s:%d', url, addr.address, port);

    // The one reply we are waiting for, if any.
    let expected: { tid: number; resolve: (r: UdpReply | null) => void } | undefined;
    sock.on('message', (msg: Buffer) => {
      let reply: UdpReply | null;
      try {
        reply = decodeUdpReply(msg, family, opts.peersFrom);
      } catch (err) {
        debug('%s: ignoring packet (%s)', url, (err as Error).message);
        return;
      }
      if (!reply) {
        debug('%s: ignoring short packet of %d bytes', url, msg.length);
        return;
      }
      if (!expected || reply.transactionId !== expected.tid) {
        debug('%s: ignoring reply with unexpected transaction id %d', url, reply.transactionId);
        return;
      }
      const w = expected;
      expected = undefined;
      w.resolve(reply);
    });

    const send = (buf: Buffer): Promise<void> =>
      Promise.race([
        new Promise<void>((resolve, reject) =>
          sock.send(buf, (err) =>
            err ? reject(new TrackerError(`send failed: ${describeError(err)}`)) : resolve(),
          ),
        ),
        failure,
      ]);

    /** Sends `buf` and waits up to `ms` for a reply with `tid`; null on timeout. */
    const exchange = async (buf: Buffer, tid: number, ms: number): Promise<UdpReply | null> => {
      const got = new Promise<UdpReply | null>((resolve) => {
        expected = { tid, resolve };
        waitTimer = setTimeout(() => {
          expected = undefined;
          resolve(null);
        }, ms);
      });
      await send(buf);
      try {
        return await Promise.race([got, failure]);
      } finally {
        clearTimeout(waitTimer);
        expected = undefined;
      }
    };

    // This announce's connection id (see the module comment), and when it expires.
    let connectionId: Buffer | undefined;
    let expiresAt = 0;
    let attempt = 0;
    while (attempt < retry.maxTries) {
      const wait = Math.min(retry.firstWaitMs * 2 ** attempt, retry.maxWaitMs);
      if (Date.now() >= expiresAt) connectionId = undefined;
      if (!connectionId) {
        const tid = randomTransactionId();
        debug('%s: connect (try %d, wait %dms)', url, attempt + 1, wait);
        const reply = await exchange(encodeConnectRequest(tid), tid, wait);
        if (!reply) {
          attempt++;
          continue;
        }
        if (reply.action === 'error') throw new TrackerError(reply.message || 'error reply');
        if (reply.action !== 'connect') {
          attempt++;
          continue;
        }
        connectionId = reply.connectionId;
        expiresAt = Date.now() + UDP_CONNECTION_ID_TTL_MS;
      }
      const tid = randomTransactionId();
      debug('%s: announce %s (try %d, wait %dms)', url, req.event ?? '', attempt + 1, wait);
      const reply = await exchange(
        encodeAnnounceRequest(connectionId, tid, req, urlData),
        tid,
        wait,
      );
      if (!reply) {
        attempt++;
        continue;
      }
      if (reply.action === 'error') throw new TrackerError(reply.message || 'error reply');
      if (reply.action !== 'announce') {
        attempt++;
        continue;
      }
      const res: AnnounceResponse = {
        interval: reply.interval,
        peers: reply.peers,
        complete: reply.seeders,
        incomplete: reply.leechers,
      };
      return res;
    }
    throw new TrackerError(
      `no reply after ${retry.maxTries} tries (${udpRetryBudgetMs(retry)} ms)`,
    );
  } finally {
    clearTimeout(deadline);
    clearTimeout(waitTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    if (socket) {
      const s = socket;
      s.removeAllListeners('message');
      s.on('error', () => undefined);
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  }
}
