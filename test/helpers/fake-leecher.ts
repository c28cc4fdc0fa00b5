/**
 * A scriptable fake downloader for end-to-end tests of uploading: it connects to a host:port
 * over real TCP, sends a handshake (optionally announcing the fast extension, BEP 6, and the
 * extension protocol, BEP 10), then lets a test send raw messages and read what the other side
 * sends back.
 *
 *   const l = await FakeLeecher.connect({ port, infoHash, fast: true });
 *   await l.waitHandshake();
 *   l.interested();
 *   await l.waitFor((f) => f.id === MessageId.unchoke);
 *   l.request(0, 0, 16384);
 *   const [p] = await l.waitPieces(1);
 *
 * It parses frames itself (length, id, payload) so it sees every message id, including BEP 6
 * (13–17) and BEP 10 (20) that the wire codec reports as 'unknown'; ids 0–9 are also decoded
 * with src/wire/messages.ts. It can stop reading its socket (`pause`) to play a peer that never
 * reads, and it keeps received blocks so a test can check their bytes.
 *
 * Waits are bounded (DEFAULT_WAIT_MS) and fail at once when the connection closes. Frames above
 * `maxFrame` bytes are a protocol error that ends the connection, so memory stays bounded.
 * `close()` always ends the socket; call it in `afterEach`/`finally`.
 */
import net from 'node:net';
import { type BDict, decodeStrict, encode, isDict } from '../../src/metainfo/bencode.js';
import { decodeHandshake, encodeHandshake, type Handshake } from '../../src/wire/handshake.js';
import { decodeMessage, encodeMessage, type Message } from '../../src/wire/messages.js';

const DEFAULT_WAIT_MS = 10_000;
/** Largest frame accepted by default: a 16 KiB block and headers, with room to spare. */
export const DEFAULT_MAX_FRAME = 1 << 20;

/** BEP 6 and BEP 10 message ids (the wire codec only names 0–9). */
export const ExtraId = {
  suggest: 13,
  haveAll: 14,
  haveNone: 15,
  reject: 16,
  allowedFast: 17,
  extended: 20,
} as const;

export const FAKE_LEECHER_PEER_ID = Buffer.from('-FL0001-fakeleecher!');

export interface FakeLeecherOptions {
  host?: string;
  port: number;
  infoHash: Buffer;
  peerId?: Buffer;
  /** Announce the fast extension (reserved byte 7, bit 0x04). */
  fast?: boolean;
  /** Announce the extension protocol (reserved byte 5, bit 0x10). */
  extended?: boolean;
  /** Exact reserved bytes to send (overrides `fast` and `extended`). */
  reserved?: Buffer;
  /** Do not send our handshake on connect (send it later with `sendHandshake`, or never). */
  noHandshake?: boolean;
  maxFrame?: number;
  connectTimeoutMs?: number;
  /**
   * Keep received blocks in `pieces` and `frames` (default true). False keeps only the counters
   * (`blocksReceived`, `blockBytes`): for long transfers, so memory stays flat.
   */
  keepBlocks?: boolean;
  /** Local address to connect from (e.g. 127.0.0.7), so per-address caps see distinct peers. */
  localAddress?: string;
  /**
   * Check every received block against the torrent's data on arrival (works with
   * `keepBlocks: false`): mismatches are counted in `badBlocks`.
   */
  checkAgainst?: { data: Buffer; pieceLength: number };
}

/** One frame as received: `id` null for a keep-alive. */
export interface Frame {
  id: number | null;
  payload: Buffer;
  /** Decoded by the wire codec for ids 0–9 (undefined if it refused the frame). */
  message?: Message;
}

export interface Block {
  index: number;
  begin: number;
  length: number;
}

export interface ReceivedPiece {
  index: number;
  begin: number;
  block: Buffer;
}

/** Reserved bytes for a handshake announcing the given extensions. */
export function reservedBits(o: { fast?: boolean; extended?: boolean }): Buffer {
  const r = Buffer.alloc(8);
  if (o.extended) r[5]! |= 0x10;
  if (o.fast) r[7]! |= 0x04;
  return r;
}

/** A raw frame: <length><id><payload>. */
export function encodeFrame(id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out.writeUInt32BE(1 + payload.length, 0);
  out[4] = id;
  payload.copy(out, 5);
  return out;
}

function threeInts(a: number, b: number, c: number): Buffer {
  const p = Buffer.allocUnsafe(12);
  p.writeUInt32BE(a, 0);
  p.writeUInt32BE(b, 4);
  p.writeUInt32BE(c, 8);
  return p;
}

export class FakeLeecher {
  readonly socket: net.Socket;
  /** The other side's handshake, once read. */
  handshake: Handshake | null = null;
  /** Every frame received after the handshake, in order. */
  readonly frames: Frame[] = [];
  /** Blocks received in `piece` messages (copies). */
  readonly pieces: ReceivedPiece[] = [];
  /** `piece` messages received, and their block bytes (counted even when not kept). */
  blocksReceived = 0;
  blockBytes = 0;
  /** Blocks that did not match `checkAgainst`. */
  badBlocks = 0;
  /** BEP 6 rejects received. */
  readonly rejects: Block[] = [];
  /** BEP 6 allowed-fast pieces received. */
  readonly allowedFast = new Set<number>();
  /** Set by choke/unchoke (we start choked). */
  choked = true;
  /** Bytes read from the socket (handshake included). */
  bytesReceived = 0;
  /** Bytes written to the socket. */
  bytesSent = 0;
  /** What the other side sent that could not be parsed. */
  protocolError: Error | null = null;
  closedAt: number | null = null;
  readonly closed: Promise<void>;

  readonly #maxFrame: number;
  #buf: Buffer = Buffer.alloc(0);
  readonly #wakers = new Set<() => void>();
  readonly #opts: FakeLeecherOptions;

  private constructor(socket: net.Socket, opts: FakeLeecherOptions) {
    this.socket = socket;
    this.#opts = opts;
    this.#maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.closedAt = Date.now();
        this.#wake();
        resolve();
      });
    });
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** Connects and (unless `noHandshake`) sends our handshake. Rejects if TCP fails. */
  static async connect(opts: FakeLeecherOptions): Promise<FakeLeecher> {
    const socket = net.connect({
      host: opts.host ?? '127.0.0.1',
      port: opts.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_WAIT_MS;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`fake leecher: connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', reject);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const l = new FakeLeecher(socket, opts);
    if (!opts.noHandshake) l.sendHandshake();
    return l;
  }

  get isClosed(): boolean {
    return this.closedAt !== null || this.socket.destroyed;
  }

  /** Frames of one id received so far. */
  framesOf(id: number | null): Frame[] {
    return this.frames.filter((f) => f.id === id);
  }

  // --- sending ---------------------------------------------------------------------------

  /** Raw bytes, as they are. */
  send(bytes: Buffer): void {
    if (this.isClosed) return;
    this.bytesSent += bytes.length;
    this.socket.write(bytes);
  }

  /** Resolves once everything written so far is handed to the OS (or the socket is gone). */
  flush(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise<void>((resolve) => this.socket.write(Buffer.alloc(0), () => resolve()));
  }

  sendHandshake(): void {
    const o = this.#opts;
    const reserved = o.reserved ?? reservedBits(o);
    this.send(encodeHandshake(o.infoHash, o.peerId ?? FAKE_LEECHER_PEER_ID, reserved));
  }

  sendMessage(m: Message): void {
    this.send(encodeMessage(m));
  }

  /** A frame with any id and payload (BEP 6, BEP 10, or nonsense). */
  sendFrame(id: number, payload?: Buffer): void {
    this.send(encodeFrame(id, payload));
  }

  interested(): void {
    this.sendMessage({ type: 'interested' });
  }

  notInterested(): void {
    this.sendMessage({ type: 'not-interested' });
  }

  keepAlive(): void {
    this.sendMessage({ type: 'keep-alive' });
  }

  have(index: number): void {
    this.sendMessage({ type: 'have', index });
  }

  bitfield(bits: Buffer): void {
    this.sendMessage({ type: 'bitfield', bitfield: bits });
  }

  /** BEP 6 have-none (what a new downloader with the fast extension sends). */
  haveNone(): void {
    this.sendFrame(ExtraId.haveNone);
  }

  /** Any 32-bit values, unchecked, so tests can send absurd requests. */
  request(index: number, begin: number, length: number): void {
    this.sendFrame(6, threeInts(index >>> 0, begin >>> 0, length >>> 0));
  }

  cancel(index: number, begin: number, length: number): void {
    this.sendFrame(8, threeInts(index >>> 0, begin >>> 0, length >>> 0));
  }

  /** BEP 10 extended message: <ext id><payload>, e.g. (0, bencoded handshake). */
  extendedMessage(extId: number, payload: Buffer): void {
    this.sendFrame(ExtraId.extended, Buffer.concat([Buffer.from([extId]), payload]));
  }

  /** Our BEP 10 handshake (extended message 0), e.g. `{ m: { ut_metadata: 1 }, reqq: 250 }`. */
  sendExtendedHandshake(dict: Record<string, unknown>): void {
    this.extendedMessage(0, encode(dict));
  }

  /** Requests a whole piece of `pieceSize` bytes, in 16 KiB blocks (the last one shorter). */
  requestPiece(index: number, pieceSize: number, blockSize = 16384): number {
    let n = 0;
    for (let begin = 0; begin < pieceSize; begin += blockSize, n++) {
      this.request(index, begin, Math.min(blockSize, pieceSize - begin));
    }
    return n;
  }

  /**
   * The other side's BEP 10 handshake (the first extended message with id 0), decoded by our
   * strict bencode guard; waits for it. Its `reqq` is the request queue it advertises.
   */
  waitExtendedHandshake(timeoutMs = DEFAULT_WAIT_MS): Promise<BDict> {
    return this.waitFor((f) => f.id === ExtraId.extended && f.payload[0] === 0, {
      timeoutMs,
    }).then((f) => {
      const { value } = decodeStrict(f.payload.subarray(1));
      if (!isDict(value)) throw new Error('fake leecher: extended handshake is not a dictionary');
      return value;
    });
  }

  /** `n` seeded pseudo-random bytes (not a PRNG for security; the same bytes every run). */
  garbage(n: number, seed = 1): void {
    const out = Buffer.allocUnsafe(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    this.send(out);
  }

  // --- reading -------------------------------------------------------------------------

  /** Stop reading the socket: the other side's writes back up (a peer that never reads). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Waits for the other side's handshake. */
  waitHandshake(timeoutMs = DEFAULT_WAIT_MS): Promise<Handshake> {
    return this.#waitFor(() => this.handshake ?? undefined, timeoutMs, 'the handshake');
  }

  /**
   * The first frame received at or after position `from` of `frames` that matches; waits for
   * it if need be. Pass `from: l.frames.length` to wait for a new frame only.
   */
  waitFor(
    match: (f: Frame) => boolean,
    opts: { from?: number; timeoutMs?: number } = {},
  ): Promise<Frame> {
    let next = opts.from ?? 0;
    const find = (): Frame | undefined => {
      for (; next < this.frames.length; next++) {
        const f = this.frames[next]!;
        if (match(f)) return f;
      }
      return undefined;
    };
    return this.#waitFor(find, opts.timeoutMs ?? DEFAULT_WAIT_MS, 'a matching frame');
  }

  /** Waits until `n` blocks have been received in all; returns the kept ones. */
  waitPieces(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ReceivedPiece[]> {
    return this.#waitFor(
      () => (this.blocksReceived >= n ? this.pieces : undefined),
      timeoutMs,
      `${n} pieces`,
    );
  }

  /** Resolves when the connection closes; rejects after `timeoutMs` if it stays open. */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('fake leecher: connection still open')),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Checks the received blocks against the torrent's data: every block must equal the bytes
   * at its place. Returns the number of bytes checked; throws on the first mismatch.
   */
  verifyPieces(data: Buffer, pieceLength: number): number {
    let n = 0;
    for (const p of this.pieces) {
      const start = p.index * pieceLength + p.begin;
      const want = data.subarray(start, start + p.block.length);
      if (want.length !== p.block.length || !want.equals(p.block)) {
        throw new Error(`fake leecher: wrong bytes in piece ${p.index} at ${p.begin}`);
      }
      n += p.block.length;
    }
    return n;
  }

  /**
   * Plays an honest downloader: sends `interested` and requests every block of the torrent
   * (`pipeline` in flight), asking again for blocks rejected or dropped by a choke, until every
   * block has arrived once. Resolves with the blocks' bytes received; rejects on close or after
   * `timeoutMs` without completing. Use `checkAgainst` (or `verifyPieces`) to check the bytes.
   */
  async downloadAll(
    size: number,
    pieceLength: number,
    o: { pipeline?: number; timeoutMs?: number; blockSize?: number } = {},
  ): Promise<number> {
    const blockSize = o.blockSize ?? 16384;
    const pipeline = o.pipeline ?? 32;
    const pending: Block[] = [];
    for (let index = 0; index * pieceLength < size; index++) {
      const plen = Math.min(pieceLength, size - index * pieceLength);
      for (let begin = 0; begin < plen; begin += blockSize) {
        pending.push({ index, begin, length: Math.min(blockSize, plen - begin) });
      }
    }
    pending.reverse(); // pop() takes the first block
    const total = pending.length;
    const key = (i: number, b: number) => i * 0x1_0000_0000 + b;
    const lengthOf = new Map<number, number>();
    for (const b of pending) lengthOf.set(key(b.index, b.begin), b.length);
    const inflight = new Map<number, Block>();
    const done = new Set<number>();
    let bytes = 0;
    let next = this.frames.length;
    this.interested();
    const step = (): number | undefined => {
      for (; next < this.frames.length; next++) {
        const f = this.frames[next]!;
        if (f.id === 0) {
          // A choke drops every request (without the fast extension; with it, rejects follow).
          for (const b of inflight.values()) pending.push(b);
          inflight.clear();
        } else if (f.id === 7 || f.id === ExtraId.reject) {
          if (f.payload.length < 8) continue;
          const k = key(f.payload.readUInt32BE(0), f.payload.readUInt32BE(4));
          const b = inflight.get(k);
          if (f.id === 7) {
            if (!done.has(k) && lengthOf.has(k)) {
              done.add(k);
              bytes += lengthOf.get(k)!;
            }
            inflight.delete(k);
          } else if (b) {
            inflight.delete(k);
            pending.push(b);
          }
        }
      }
      if (done.size >= total) return bytes;
      if (!this.choked) {
        while (inflight.size < pipeline && pending.length > 0) {
          const b = pending.pop()!;
          const k = key(b.index, b.begin);
          if (done.has(k) || inflight.has(k)) continue;
          inflight.set(k, b);
          this.request(b.index, b.begin, b.length);
        }
      }
      return undefined;
    };
    return this.#waitFor(step, o.timeoutMs ?? 60_000, `all ${total} blocks`);
  }

  /** Ends the connection (both ways) and waits for it to close. */
  async close(): Promise<void> {
    this.socket.destroy();
    await this.closed;
  }

  #onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.protocolError) return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    try {
      if (this.handshake === null) {
        const hs = decodeHandshake(this.#buf.subarray(0, 68));
        if (hs === null) return;
        this.handshake = hs;
        this.#buf = this.#buf.subarray(68);
      }
      while (this.#buf.length >= 4) {
        const length = this.#buf.readUInt32BE(0);
        if (length > this.#maxFrame) {
          throw new Error(`frame of ${length} bytes (more than ${this.#maxFrame})`);
        }
        if (this.#buf.length < 4 + length) break;
        const frameBytes = this.#buf.subarray(0, 4 + length);
        this.#buf = this.#buf.subarray(4 + length);
        this.#onFrame(frameBytes);
      }
      // Drop the reference to a large chunk once only a small tail is left.
      if (this.#buf.length > 0 && this.#buf.buffer.byteLength > 4 * this.#buf.length + 4096) {
        this.#buf = Buffer.from(this.#buf);
      }
    } catch (e) {
      this.protocolError = e as Error;
      this.socket.destroy();
    } finally {
      this.#wake();
    }
  }

  #onFrame(bytes: Buffer): void {
    const length = bytes.length - 4;
    if (length === 0) {
      this.frames.push({ id: null, payload: Buffer.alloc(0), message: { type: 'keep-alive' } });
      return;
    }
    const id = bytes[4]!;
    if (id === 7 && length >= 9) {
      this.blocksReceived++;
      this.blockBytes += length - 9;
      const c = this.#opts.checkAgainst;
      if (c) {
        const start = bytes.readUInt32BE(5) * c.pieceLength + bytes.readUInt32BE(9);
        const block = bytes.subarray(13);
        const want = c.data.subarray(start, start + block.length);
        if (want.length !== block.length || !want.equals(block)) this.badBlocks++;
      }
      if (this.#opts.keepBlocks === false) {
        this.frames.push({ id, payload: Buffer.from(bytes.subarray(5, 13)) });
        return;
      }
    }
    const payload = Buffer.from(bytes.subarray(5));
    const frame: Frame = { id, payload };
    if (id <= 9) {
      try {
        const m = decodeMessage(bytes, length)?.message;
        if (m !== undefined) {
          frame.message =
            m.type === 'piece'
              ? { ...m, block: payload.subarray(8) }
              : m.type === 'bitfield'
                ? { ...m, bitfield: payload }
                : m;
        }
      } catch {
        // Left undecoded: a test can look at the raw payload.
      }
    }
    this.frames.push(frame);
    const m = frame.message;
    if (m?.type === 'choke') this.choked = true;
    else if (m?.type === 'unchoke') this.choked = false;
    else if (m?.type === 'piece')
      this.pieces.push({ index: m.index, begin: m.begin, block: m.block });
    else if (id === ExtraId.reject && payload.length === 12) {
      this.rejects.push({
        index: payload.readUInt32BE(0),
        begin: payload.readUInt32BE(4),
        length: payload.readUInt32BE(8),
      });
    } else if (id === ExtraId.allowedFast && payload.length === 4) {
      this.allowedFast.add(payload.readUInt32BE(0));
    }
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  /** Resolves with `get()` once it is defined; throws on close, protocol error or timeout. */
  async #waitFor<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (this.protocolError) throw this.protocolError;
      if (this.isClosed) throw new Error(`fake leecher: closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake leecher: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#wakers.add(done);
      });
    }
  }
}
