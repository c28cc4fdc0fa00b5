/**
 * The TCP listener for incoming peers.
 *
 * Port choice: `--port N` binds N (failing if it is taken); without it the first free port of
 * 6881–6889 is used, else an ephemeral one; `--port 0` asks for an ephemeral one. `--bind`
 * restricts it to one address. The port actually bound is what trackers are told.
 *
 * Caps before a connection reaches the swarm: connections still handshaking (in all and per
 * address) are bounded, and every accepted socket must complete a valid handshake for our
 * torrent within the handshake timeout, or it is closed.
 *
 * A connection that opens with message stream encryption (src/wire/mse.ts) instead of the plain
 * handshake is answered with a plaintext stream: aria2c starts every connection that way and, if
 * refused, waits about a second before it tries the plain handshake. The MSE exchange has a
 * handshake timeout of its own. Under `--encryption require` a plain handshake is closed and
 * MSE always selects RC4.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { logger } from '../log.js';
import { describeError, UsageError } from '../errors.js';
import { formatPeerAddress } from '../tracker/types.js';
import { PeerConnection, type EncryptionMode } from '../peer/connection.js';
import { MseResponder, sniffHandshake } from '../wire/mse.js';
import type { ConnectionCipher } from '../peer/connection.js';
import { OwnAddresses } from './own-addresses.js';

/** How an accepted socket opened: through MSE or not, and RC4 both ways if MSE selected it. */
interface Opened {
  mse: boolean;
  cipher: ConnectionCipher | null;
}

const log = logger('tdl:listen');

export const DEFAULT_PORTS = [6881, 6882, 6883, 6884, 6885, 6886, 6887, 6888, 6889];
/** Incoming connections that have not finished their handshake, in all and from one address. */
export const MAX_HANDSHAKING = 64;
export const MAX_HANDSHAKING_PER_ADDRESS = 8;

export interface ListenOptions {
  /** undefined: 6881–6889, else ephemeral; 0: ephemeral. */
  port?: number;
  /** Address to listen on (default: all). */
  bind?: string;
}

export interface ListenerEvents {
  /** A handshaken incoming connection: the owner takes it (calls start) or closes it. */
  peer: [conn: PeerConnection];
}

export class Listener extends EventEmitter<ListenerEvents> {
  private server: net.Server | null = null;
  private readonly handshaking = new Set<PeerConnection>();
  /** Accepted sockets still in the MSE exchange (or before their first bytes). */
  private readonly opening = new Set<net.Socket>();
  private readonly perAddress = new Map<string, number>();
  port = 0;
  host = '';
  /** Where peers may list us once listening (never dialled, never taken from PEX). */
  own: OwnAddresses | null = null;

  constructor(
    private readonly conn: {
      infoHash: Buffer;
      peerId: Buffer;
      pieceCount: number;
      handshakeMs: number;
      /** A magnet link before its metadata: connections are metadata-only (see setPieceCount). */
      metadataOnly?: boolean;
    },
    private readonly encryption: EncryptionMode = 'allow',
  ) {
    super();
  }

  /**
   * The metadata of a magnet link is known: connections accepted from now on are ordinary
   * ones for `pieceCount` pieces (those already handshaking stay metadata-only: adopt them).
   */
  setPieceCount(pieceCount: number): void {
    this.conn.pieceCount = pieceCount;
    this.conn.metadataOnly = false;
  }

  async listen(o: ListenOptions): Promise<void> {
    const ports = o.port === undefined ? [...DEFAULT_PORTS, 0] : [o.port];
    let lastError: Error | null = null;
    for (const port of ports) {
      try {
        await this.tryListen(port, o.bind);
        log('listening on %s:%d', this.host, this.port);
        return;
      } catch (e) {
        lastError = e as Error;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES') break;
      }
    }
    throw cannotListen(o, lastError);
  }

  /**
   * Can `o.port` be listened on now? A port given by hand that is taken fails (UsageError, as
   * listen() would) before a long start-up check rather than after it; the port is let go at
   * once and taken for good by listen(). Nothing to try without a port of the user's.
   */
  static async probe(o: ListenOptions): Promise<void> {
    if (o.port === undefined || o.port === 0) return;
    const e = await bindsNow(o.port, o.bind);
    if (e) throw cannotListen(o, e);
  }

  /**
   * `--bind` with no listener (`--no-listen`): that the address is one of this machine's, by
   * binding to it on any port for a moment. A UsageError when it is not (EADDRNOTAVAIL): every
   * connection from it would fail, and the run would end as one that found no peer (exit 4).
   */
  static async checkAddress(host: string): Promise<void> {
    const e = await bindsNow(0, host);
    if (e) {
      throw new UsageError(
        `--bind ${host}: cannot use this address (${describeError(e)}): give one of this machine's addresses`,
      );
    }
  }

  private async tryListen(port: number, host?: string): Promise<void> {
    const server = net.createServer({ pauseOnConnect: false }, (s) => this.onSocket(s));
    await bind(server, port, host);
    server.on('error', (e) => log('listener error: %s', e.message));
    const a = server.address() as net.AddressInfo;
    this.server = server;
    this.port = a.port;
    this.host = a.address;
    this.own = new OwnAddresses(a.port, a.address);
  }

  private onSocket(socket: net.Socket): void {
    const host = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const port = socket.remotePort ?? 0;
    const n = this.perAddress.get(host) ?? 0;
    const busy = this.handshaking.size + this.opening.size;
    if (busy >= MAX_HANDSHAKING || n >= MAX_HANDSHAKING_PER_ADDRESS || !port) {
      log('%s:%d refused: too many handshakes in progress', host, port);
      socket.destroy();
      return;
    }
    this.perAddress.set(host, n + 1);
    const release = () => {
      const left = (this.perAddress.get(host) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(host);
      else this.perAddress.set(host, left);
    };
    // Errors between the two stages are not fatal; each stage closes the socket on its own.
    socket.on('error', () => {});
    this.opening.add(socket);
    this.open(socket).then(
      (opened) => {
        this.opening.delete(socket);
        if (socket.destroyed || !this.server) {
          socket.destroy();
          release();
          return;
        }
        this.handshake(socket, host, port, release, opened);
      },
      (e: unknown) => {
        this.opening.delete(socket);
        socket.destroy();
        release();
        log('%s:%d incoming encryption handshake failed: %s', host, port, (e as Error).message);
      },
    );
  }

  /**
   * Resolves once the socket is ready for the plain BitTorrent handshake: at once when its first
   * bytes are that handshake (they are put back), after answering MSE otherwise (the decrypted
   * initial payload and what followed it are put back). Rejects on a bad MSE exchange, a close
   * or the handshake timeout.
   */
  private open(socket: net.Socket): Promise<Opened> {
    return new Promise<Opened>((resolve, reject) => {
      let head: Buffer = Buffer.alloc(0);
      let mse: MseResponder | null = null;
      const finish = (e?: Error, cipher: ConnectionCipher | null = null) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.off('error', onClose);
        socket.pause();
        if (e) reject(e);
        else resolve({ mse: mse !== null, cipher });
      };
      const onClose = () => finish(new Error('closed during the handshake'));
      const onData = (chunk: Buffer) => {
        try {
          if (!mse) {
            head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
            const kind = sniffHandshake(head);
            if (kind === null) return;
            if (kind === 'plain') {
              if (this.encryption === 'require') {
                finish(new Error('plain handshake refused (encryption required)'));
                return;
              }
              // Put back once our listener is off and the socket paused, or it reads them again.
              finish();
              socket.unshift(head);
              return;
            }
            mse = new MseResponder(this.conn.infoHash, {
              rc4Only: this.encryption === 'require',
            });
            chunk = head;
          }
          const { send, result } = mse.push(chunk);
          if (send.length > 0) socket.write(send);
          if (result) {
            socket.write(result.reply);
            const rest = Buffer.concat([result.ia, result.rest]);
            // The bytes put back are decrypted already: the connection's cipher skips them.
            finish(undefined, result.cipher && { ...result.cipher, plainBytes: rest.length });
            if (rest.length > 0) socket.unshift(rest);
          }
        } catch (e) {
          finish(e as Error);
        }
      };
      const timer = setTimeout(
        () => finish(new Error('handshake timed out')),
        this.conn.handshakeMs,
      );
      timer.unref();
      socket.on('data', onData);
      socket.on('close', onClose);
      socket.on('error', onClose);
    });
  }

  private handshake(
    socket: net.Socket,
    host: string,
    port: number,
    release: () => void,
    opened: Opened,
  ): void {
    const conn = new PeerConnection({
      ...this.conn,
      host,
      port,
      socket,
      acceptedMse: opened.mse,
      cipher: opened.cipher ?? undefined,
    });
    this.handshaking.add(conn);
    const done = () => {
      this.handshaking.delete(conn);
      release();
    };
    conn.accept().then(
      () => {
        done();
        // Nobody to take it (the download ended a moment ago): closed, or server.close() would
        // wait for it for good, and a peer that then said nothing held tdl's exit.
        if (this.server && this.listenerCount('peer') > 0) this.emit('peer', conn);
        else conn.close('not accepting connections');
      },
      (e: unknown) => {
        done();
        log('%s:%d incoming handshake failed: %s', host, port, (e as Error).message);
      },
    );
    // open() paused the socket: reading goes on now that the connection listens.
    socket.resume();
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of [...this.handshaking]) c.close('shutting down');
    for (const s of [...this.opening]) s.destroy();
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

/** `server` listening on `port` at `host` (every address when absent); closed if it cannot. */
function bind(server: net.Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.close();
      reject(e);
    };
    server.once('error', onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Bind a server to `port` on `host` and let it go at once: the error that stops it, or null. */
async function bindsNow(port: number, host: string | undefined): Promise<Error | null> {
  const server = net.createServer();
  try {
    await bind(server, port, host);
  } catch (e) {
    return e as Error;
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return null;
}

/** The usage error for a port that cannot be listened on (a taken --port: exit 2). */
function cannotListen(o: ListenOptions, e: Error | null): UsageError {
  // An address this machine does not have: said as --no-listen and tdl info say it.
  if (o.bind && (e as NodeJS.ErrnoException | null)?.code === 'EADDRNOTAVAIL') {
    return new UsageError(
      `--bind ${o.bind}: cannot use this address (${describeError(e!)}): give one of this machine's addresses`,
    );
  }
  const port = o.port ?? '6881-6889';
  const where = o.bind ? formatPeerAddress({ host: o.bind, port }) : `port ${port}`;
  return new UsageError(`cannot listen on ${where}: ${e ? describeError(e) : 'unknown error'}`);
}
