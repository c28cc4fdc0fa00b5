/**
 * A scriptable hostile peer: a TCP server on 127.0.0.1 that runs a script for every connection
 * it accepts. A script can write raw bytes or wire messages, wait, read what tdl sends, or do
 * nothing at all (a peer that never handshakes). Every connection is recorded (when it opened,
 * when and by whom it was closed, what tdl sent) so tests can check that tdl dropped the peer,
 * and how fast.
 *
 *   const p = await startHostilePeer(async (c) => {
 *     await c.exchangeHandshakes(infoHash);
 *     await c.write(Buffer.from([0xff, 0xff, 0xff, 0xff])); // a 4 GiB length prefix
 *   });
 *
 * Waits inside scripts are bounded and end when the connection closes (ConnectionClosed is
 * thrown, and swallowed by the runner). close() ends every connection and frees the port.
 */
import net from 'node:net';
import { Bitfield } from '../../src/wire/bitfield.js';
import { Framer } from '../../src/wire/framer.js';
import { encodeHandshake, type Handshake } from '../../src/wire/handshake.js';
import { encodeMessage, encodePiece, type Message } from '../../src/wire/messages.js';

/** Thrown by waits when the connection closed under them (not a script failure). */
export class ConnectionClosed extends Error {}

export interface BlockRequest {
  index: number;
  begin: number;
  length: number;
}

/** Peer id the hostile peers answer with, unless a script says otherwise. */
export const HOSTILE_PEER_ID = Buffer.from('-HP0001-hostilepeer!');

const DEFAULT_WAIT_MS = 10_000;

export class HostileConnection {
  readonly openedAt = Date.now();
  /** When the connection closed (either side), or null while it is open. */
  closedAt: number | null = null;
  /** True when this side ended the connection (script or helper), false when tdl did. */
  closedByUs = false;
  /** The handshake tdl sent, once it has arrived. */
  handshake: Handshake | null = null;
  /** Every message tdl sent after its handshake, in order. */
  readonly received: Message[] = [];
  /** Bytes this side wrote. */
  bytesWritten = 0;
  /** A framing error in what tdl sent (tdl should never cause one). */
  protocolError: Error | null = null;
  /** Resolves when the connection closes. */
  readonly closed: Promise<void>;

  readonly #framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
  readonly #queue: Message[] = [];
  readonly #wakers = new Set<() => void>();

  constructor(
    readonly index: number,
    readonly socket: net.Socket,
  ) {
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

  get isClosed(): boolean {
    return this.closedAt !== null || this.socket.destroyed;
  }

  /** Milliseconds the connection stayed open (up to now while it is still open). */
  get lifetimeMs(): number {
    return (this.closedAt ?? Date.now()) - this.openedAt;
  }

  #onData(chunk: Buffer): void {
    if (this.protocolError) return;
    try {
      this.#framer.push(chunk);
      if (!this.handshake) {
        this.handshake = this.#framer.nextHandshake();
        if (!this.handshake) return;
      }
      for (let m = this.#framer.next(); m; m = this.#framer.next()) {
        // Views into socket chunks: copy what a test may keep.
        const kept: Message =
          m.type === 'piece'
            ? { ...m, block: Buffer.from(m.block) }
            : m.type === 'bitfield'
              ? { ...m, bitfield: Buffer.from(m.bitfield) }
              : m;
        this.received.push(kept);
        this.#queue.push(kept);
      }
    } catch (e) {
      this.protocolError = e as Error;
    } finally {
      this.#wake();
    }
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  /** Resolves with `get()` once it is defined; throws on close or after `timeoutMs`. */
  async #waitFor<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (this.protocolError) throw this.protocolError;
      if (this.isClosed) throw new ConnectionClosed(`closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`hostile peer: timed out waiting for ${what}`);
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

  /** Waits for tdl's 68-byte handshake. */
  readHandshake(timeoutMs = DEFAULT_WAIT_MS): Promise<Handshake> {
    return this.#waitFor(() => this.handshake ?? undefined, timeoutMs, 'the handshake');
  }

  /** The next message tdl sends (after its handshake). */
  nextMessage(timeoutMs = DEFAULT_WAIT_MS): Promise<Message> {
    return this.#waitFor(() => this.#queue.shift(), timeoutMs, 'a message');
  }

  /** Skips messages until one of type `type` arrives. */
  async waitForMessage<T extends Message['type']>(
    type: T,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<Extract<Message, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.nextMessage(Math.max(1, deadline - Date.now()));
      if (m.type === type) return m as Extract<Message, { type: T }>;
    }
  }

  /** Writes raw bytes; resolves once handed to the OS (or at once if the socket is gone). */
  write(bytes: Buffer | string): Promise<void> {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    if (this.isClosed) return Promise.resolve();
    this.bytesWritten += buf.length;
    return new Promise<void>((resolve) => this.socket.write(buf, () => resolve()));
  }

  send(m: Message): Promise<void> {
    return this.write(encodeMessage(m));
  }

  sendHandshake(infoHash: Buffer, peerId: Buffer = HOSTILE_PEER_ID): Promise<void> {
    return this.write(encodeHandshake(infoHash, peerId));
  }

  /** A bitfield claiming every piece of a `pieceCount`-piece torrent. */
  sendFullBitfield(pieceCount: number): Promise<void> {
    const bf = new Bitfield(pieceCount);
    for (let i = 0; i < pieceCount; i++) bf.set(i);
    return this.send({ type: 'bitfield', bitfield: bf.toBuffer() });
  }

  /** Reads tdl's handshake and answers with one for `infoHash`. */
  async exchangeHandshakes(infoHash: Buffer, peerId?: Buffer): Promise<Handshake> {
    const hs = await this.readHandshake();
    await this.sendHandshake(infoHash, peerId);
    return hs;
  }

  /** Handshake, a full bitfield, then an unchoke once tdl says it is interested. */
  async becomeReadySeeder(infoHash: Buffer, pieceCount: number): Promise<void> {
    await this.exchangeHandshakes(infoHash);
    await this.sendFullBitfield(pieceCount);
    await this.waitForMessage('interested');
    await this.send({ type: 'unchoke' });
  }

  /** Resolves after `ms`, or as soon as the connection closes. */
  sleep(ms: number): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    // Only the timer or the close ends it: messages from tdl (a `have`, say) do not.
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      void this.closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Ends the connection from this side. */
  close(): void {
    if (!this.isClosed) this.closedByUs = true;
    this.socket.destroy();
  }
}

export type HostileScript = (c: HostileConnection) => Promise<void> | void;

export interface HostilePeer {
  port: number;
  address: { host: string; port: number };
  /** `host:port` as given to `--peer`. */
  hostPort: string;
  /** Every connection accepted so far. */
  conns: HostileConnection[];
  /** Script failures other than the connection closing (a bug in a test script). */
  errors: Error[];
  close(): Promise<void>;
}

/** Starts a hostile peer running `script` for each connection (0-based `c.index`). */
export async function startHostilePeer(script: HostileScript): Promise<HostilePeer> {
  const conns: HostileConnection[] = [];
  const errors: Error[] = [];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const c = new HostileConnection(conns.length, socket);
    conns.push(c);
    void (async () => {
      try {
        await script(c);
      } catch (e) {
        if (!(e instanceof ConnectionClosed) && !c.isClosed) errors.push(e as Error);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as net.AddressInfo;
  let closing: Promise<void> | null = null;
  return {
    port,
    address: { host: '127.0.0.1', port },
    hostPort: `127.0.0.1:${port}`,
    conns,
    errors,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const c of conns) c.close();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** What a correct seeder sends for `r`: the block of `data` it names. */
export function correctBlock(data: Buffer, pieceLength: number, r: BlockRequest): Buffer {
  const start = r.index * pieceLength + r.begin;
  return encodePiece(r.index, r.begin, data.subarray(start, start + r.length));
}

/**
 * A seeder script: handshake, full bitfield, unchoke when interested, then answer every request
 * with `answer(r)` (the correct block by default; null sends nothing). `bytesPerSecond` paces the
 * answers.
 */
export function seederScript(o: {
  infoHash: Buffer;
  data: Buffer;
  pieceLength: number;
  answer?: (r: BlockRequest, c: HostileConnection) => Buffer | null;
  bytesPerSecond?: number;
}): HostileScript {
  const pieceCount = Math.ceil(o.data.length / o.pieceLength);
  return async (c) => {
    await c.becomeReadySeeder(o.infoHash, pieceCount);
    for (;;) {
      const m = await c.nextMessage(120_000);
      if (m.type !== 'request') continue;
      const out = o.answer ? o.answer(m, c) : correctBlock(o.data, o.pieceLength, m);
      if (out === null) continue;
      await c.write(out);
      if (o.bytesPerSecond) await c.sleep((out.length / o.bytesPerSecond) * 1000);
    }
  };
}
