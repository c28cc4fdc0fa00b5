/**
 * One peer connection: a small state machine over a thin socket adapter.
 *
 *   connecting --(TCP up)--> handshaking --(valid handshake)--> open --(any failure)--> closed
 *
 * Every wait is bounded: connect, handshake and idle timeouts. Any protocol violation closes the
 * connection with a reason; it never throws out of here. The swarm decides what to request; this
 * class only keeps the peer's view (choke state, bitfield) and frames messages.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import createDebug from 'debug';
import { TdlError, WireError } from '../errors.js';
import { formatPeerAddress } from '../tracker/types.js';
import { Bitfield } from '../wire/bitfield.js';
import { Framer, READ_SIZE } from '../wire/framer.js';
import { HANDSHAKE_LENGTH, encodeHandshake } from '../wire/handshake.js';
import {
  encodeCancel,
  encodeMessage,
  maxMessageLength,
  MessageId,
  type Message,
} from '../wire/messages.js';

/** A request message: length prefix, id, index, begin, length. */
const REQUEST_BYTES = 17;

const log = createDebug('tdl:peer');

export const CONNECT_TIMEOUT_MS = 5_000;
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** A peer that sends nothing at all (not even a keep-alive) for this long is dropped. */
export const IDLE_TIMEOUT_MS = 120_000;
export const KEEPALIVE_INTERVAL_MS = 60_000;

export interface PeerTimeouts {
  connectMs: number;
  handshakeMs: number;
  idleMs: number;
}

export interface PeerOptions {
  host: string;
  port: number;
  infoHash: Buffer;
  peerId: Buffer;
  pieceCount: number;
  timeouts?: Partial<PeerTimeouts>;
}

export type PeerState = 'connecting' | 'handshaking' | 'open' | 'closed';

export interface PeerConnectionEvents {
  /** The peer's availability changed: a bitfield (first message) or a `have`. */
  bitfield: [];
  have: [index: number];
  choke: [];
  unchoke: [];
  block: [index: number, begin: number, data: Buffer];
  /** Every message of one socket read has been delivered (a good moment to send requests). */
  drained: [];
  close: [reason: string];
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  state: PeerState = 'connecting';
  peerChoking = true;
  peerInterested = false;
  amInterested = false;
  remotePeerId: Buffer | null = null;
  bitfield: Bitfield;
  closeReason: string | null = null;

  private socket: net.Socket | null = null;
  private readonly framer: Framer;
  private readonly timeouts: PeerTimeouts;
  private timer: NodeJS.Timeout | null = null;
  private timerReason = '';
  private keepalive: NodeJS.Timeout | null = null;
  private messagesSeen = 0;
  private started = false;

  constructor(private readonly opts: PeerOptions) {
    super();
    this.host = opts.host;
    this.port = opts.port;
    this.address = formatPeerAddress(opts);
    this.bitfield = new Bitfield(opts.pieceCount);
    this.framer = new Framer({
      maxLength: maxMessageLength(opts.pieceCount),
      expectHandshake: true,
    });
    this.timeouts = {
      connectMs: opts.timeouts?.connectMs ?? CONNECT_TIMEOUT_MS,
      handshakeMs: opts.timeouts?.handshakeMs ?? HANDSHAKE_TIMEOUT_MS,
      idleMs: opts.timeouts?.idleMs ?? IDLE_TIMEOUT_MS,
    };
  }

  /** Connect and exchange handshakes. Resolves when open; rejects (and closes) on any failure. */
  connect(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        this.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onClose = (reason: string) => settle(new WireError(reason));
      this.on('close', onClose);

      log('%s connecting', this.address);
      // Reads go straight into the framer's own buffer: no allocation per chunk.
      const socket = net.connect({
        host: this.host,
        port: this.port,
        onread: {
          buffer: () => this.readBuffer(),
          callback: (n: number) => {
            if (this.state === 'closed') return false;
            this.framer.commit(n);
            this.onData();
            if (this.state === 'open') settle();
            // Once open, read no further until start(): what came with the handshake waits in
            // the framer, and a flood cannot fill it before the owner is listening.
            return this.started || this.state !== 'open';
          },
        },
      });
      this.socket = socket;
      socket.setNoDelay(true);
      this.arm(this.timeouts.connectMs, 'connect timed out');
      socket.once('connect', () => {
        if (this.state === 'closed') return;
        this.state = 'handshaking';
        this.arm(this.timeouts.handshakeMs, 'handshake timed out');
        socket.write(encodeHandshake(this.opts.infoHash, this.opts.peerId));
      });
      socket.on('error', (e) => this.close(`socket error: ${e.message}`));
      socket.on('close', () => this.close('connection closed by peer'));
    });
  }

  /**
   * Where the next socket read goes: the framer's free space, or scratch once closed. Until the
   * handshake is in, reads take only its remaining bytes, so that what the peer sends after it
   * stays in the socket until start() (reading pauses in between) rather than filling the framer.
   */
  private readBuffer(): Buffer {
    if (this.state !== 'closed') {
      try {
        const free = this.framer.writable(READ_SIZE);
        if (this.state === 'open') return free;
        return free.subarray(0, Math.max(1, HANDSHAKE_LENGTH - this.framer.buffered));
      } catch (e) {
        this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
      }
    }
    return (scratch ??= Buffer.allocUnsafe(READ_SIZE));
  }

  private onData(): void {
    if (this.state === 'closed') return;
    try {
      if (this.state === 'handshaking') {
        const hs = this.framer.nextHandshake();
        if (!hs) return;
        if (!hs.infoHash.equals(this.opts.infoHash)) {
          throw new WireError('handshake for another torrent (info hash differs)');
        }
        if (hs.peerId.equals(this.opts.peerId)) {
          // Our own handshake came back: a connection to ourselves, or a peer echoing our bytes.
          throw new WireError('handshake carries our own peer id (a connection to ourselves)');
        }
        this.remotePeerId = hs.peerId;
        this.state = 'open';
        log('%s handshake ok (%s)', this.address, printableId(hs.peerId));
        this.arm(this.timeouts.idleMs, 'idle timeout');
        this.keepalive = setInterval(
          () => this.send({ type: 'keep-alive' }),
          KEEPALIVE_INTERVAL_MS,
        );
        this.keepalive.unref();
      }
      if (this.state === 'open') this.arm(this.timeouts.idleMs, 'idle timeout');
      this.drain();
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
    }
  }

  /**
   * Start delivering messages. Until then they wait in the framer, so that the owner can attach
   * its listeners after `connect()` resolves without missing the bitfield.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    try {
      this.drain();
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
    }
    if (this.state === 'open') this.socket?.resume();
  }

  private drain(): void {
    if (!this.started) return;
    let n = 0;
    for (let m = this.framer.next(); m && this.state === 'open'; m = this.framer.next()) {
      this.onMessage(m);
      n++;
    }
    if (n > 0 && this.state === 'open') this.emit('drained');
  }

  private onMessage(m: Message): void {
    const first = this.messagesSeen === 0;
    if (m.type !== 'keep-alive') this.messagesSeen++;
    switch (m.type) {
      case 'keep-alive':
        return;
      case 'choke':
        if (!this.peerChoking) {
          this.peerChoking = true;
          this.emit('choke');
        }
        return;
      case 'unchoke':
        if (this.peerChoking) {
          this.peerChoking = false;
          this.emit('unchoke');
        }
        return;
      case 'interested':
        this.peerInterested = true;
        return;
      case 'not-interested':
        this.peerInterested = false;
        return;
      case 'have':
        if (m.index >= this.opts.pieceCount) {
          throw new WireError(`have for nonexistent piece ${m.index}`);
        }
        if (!this.bitfield.has(m.index)) {
          this.bitfield.set(m.index);
          this.emit('have', m.index);
        }
        return;
      case 'bitfield': {
        if (!first) throw new WireError('bitfield after other messages');
        const bf = Bitfield.fromWire(m.bitfield, this.opts.pieceCount);
        this.bitfield = bf;
        this.emit('bitfield');
        return;
      }
      case 'piece':
        this.emit('block', m.index, m.begin, m.block);
        return;
      case 'request':
      case 'cancel':
      case 'port':
      case 'unknown':
        // We do not upload (we never unchoke anyone), and extensions are not negotiated.
        return;
    }
  }

  send(m: Message): void {
    this.write(encodeMessage(m));
  }

  interested(): void {
    if (this.amInterested) return;
    this.amInterested = true;
    this.send({ type: 'interested' });
  }

  notInterested(): void {
    if (!this.amInterested) return;
    this.amInterested = false;
    this.send({ type: 'not-interested' });
  }

  /** Send many requests in one write (one system call for the batch). */
  request(reqs: readonly { index: number; begin: number; length: number }[]): void {
    if (reqs.length === 0) return;
    const buf = Buffer.allocUnsafe(REQUEST_BYTES * reqs.length);
    let at = 0;
    for (const r of reqs) {
      buf.writeUInt32BE(13, at);
      buf[at + 4] = MessageId.request;
      buf.writeUInt32BE(r.index, at + 5);
      buf.writeUInt32BE(r.begin, at + 9);
      buf.writeUInt32BE(r.length, at + 13);
      at += REQUEST_BYTES;
    }
    this.write(buf);
  }

  cancel(index: number, begin: number, length: number): void {
    this.write(encodeCancel(index, begin, length));
  }

  private write(buf: Buffer): void {
    if (this.state !== 'open' || !this.socket) return;
    this.socket.write(buf);
  }

  /** Close the connection (idempotent). Emits 'close' once with the reason. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = reason;
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = null;
    this.keepalive = null;
    this.socket?.destroy();
    log('%s closed: %s', this.address, reason);
    this.emit('close', reason);
  }

  private arm(ms: number, reason: string): void {
    // Re-arming on every chunk is hot: refresh the running timer when nothing else changed.
    if (this.timer && this.timerReason === reason) {
      this.timer.refresh();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerReason = reason;
    this.timer = setTimeout(() => this.close(reason), ms);
    this.timer.unref();
  }
}

/** Reads that arrive after a connection closed land here and are ignored. */
let scratch: Buffer | undefined;

function printableId(id: Buffer): string {
  return id.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
}
