/**
 * One peer connection, both directions: a small state machine over a socket.
 *
 *   outgoing: connecting --(TCP up, our handshake sent)--> handshaking
 *             (with `mse`: our handshake goes inside the MSE handshake, src/wire/mse-initiator.ts)
 *   incoming: handshaking (their handshake first; ours goes back once it names our torrent)
 *   handshaking --(valid handshake)--> open --(any failure or close())--> closed
 *
 * Once open, `start(have)` sends what we have (a bitfield, or `have all` / `have none` where both
 * sides speak the fast extension, BEP 6) and our extension handshake (BEP 10), then delivers the
 * peer's messages as events. This class keeps both views of the link (who chokes whom, who is
 * interested, the peer's bitfield) and frames messages; the swarm decides what to request, what
 * to serve and whom to unchoke.
 *
 * Every wait is bounded: connect, handshake and idle timeouts. Any protocol violation closes the
 * connection with a reason; it never throws out of here.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { logger } from '../log.js';
import { describeError, TdlError, WireError } from '../errors.js';
import { formatPeerAddress } from '../tracker/types.js';
import { familyOfIp } from '../tracker/compact.js';
import { Bitfield } from '../wire/bitfield.js';
import { EarlyAvailability } from './early-availability.js';
import { Framer, MAX_READ_SIZE, READ_SIZE } from '../wire/framer.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4, type StreamCipher } from '../wire/mse.js';
import { MseInitiator } from '../wire/mse-initiator.js';
import type { EncryptionMode } from './encryption-mode.js';
import {
  HANDSHAKE_LENGTH,
  RESERVED_EXTENDED,
  RESERVED_FAST,
  encodeHandshake,
  ourReserved,
  supports,
  type Handshake,
} from '../wire/handshake.js';
import {
  PIECE_HEADER_BYTES,
  REQUEST_MESSAGE_BYTES,
  encodeCancel,
  encodeExtended,
  encodeHave,
  encodeMessage,
  encodePieceHeader,
  encodeReject,
  maxMessageLength,
  writeRequest,
  type Message,
} from '../wire/messages.js';

const log = logger('tdl:peer');

export const CONNECT_TIMEOUT_MS = 5_000;
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** A peer that sends nothing at all (not even a keep-alive) for this long is dropped. */
export const IDLE_TIMEOUT_MS = 120_000;
export const KEEPALIVE_INTERVAL_MS = 60_000;
/**
 * Unsent bytes a socket may hold before the connection is closed: the peer does not read what
 * we send. Far above what uploading keeps queued for an honest peer however slow (the upload
 * service stops reading for a socket at HIGH_WATER, 256 KiB, and its blocks in the socket and
 * being read stay under MAX_PENDING_BYTES, 4 MiB: src/swarm/upload.ts), so it bounds what
 * nothing else does: answers to a flood of requests, ut_metadata messages, `have`s.
 */
export const MAX_WRITE_QUEUED = 16 * 1024 * 1024;
/**
 * A request refused while the socket holds more than this is not answered: the connection is
 * closed (BEP 6 allows closing a peer that floods requests while choked). Above the blocks an
 * honest peer may have waiting (as above), so that one whose requests crossed our `choke` still
 * gets every `reject`.
 */
export const MAX_REFUSE_QUEUED = 8 * 1024 * 1024;

/**
 * Control messages (all but blocks, requests, cancels and `have`s of pieces it did not announce
 * before) a peer may send within
 * CONTROL_WINDOW_MS: more is a flood, and the connection is closed. An honest peer sends a few
 * a second at most (a choke's `reject`s, a metadata fetch's pieces: hundreds at once). A peer
 * sending keep-alives, choke/unchoke flips, `reject`s or extension handshakes at line rate kept
 * the event loop busy (a 9 s download took 16 to 27 s, checkpoints seconds each).
 */
export const MAX_CONTROL_MESSAGES = 10_000;
export const CONTROL_WINDOW_MS = 10_000;
/**
 * Keep-alives sent for the acknowledgement they carry (`acknowledge`) per second at most: a
 * peer that counts control messages, as tdl does above, sees a small share of its limit.
 */
export const MAX_ACKS_PER_SECOND = 50;

export type { EncryptionMode };

/** What an outgoing MSE handshake offers under a mode. */
export function mseOffer(mode: EncryptionMode): number {
  return mode === 'require' ? CRYPTO_RC4 : CRYPTO_PLAINTEXT | CRYPTO_RC4;
}

/** A connection's: no MSE, an MSE handshake then a plain stream, or RC4 both ways. */
export type ConnectionEncryption = 'none' | 'handshake' | 'rc4';

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
  /** An accepted socket: the peer sends its handshake first. */
  socket?: net.Socket;
  /**
   * The torrent's pieces are not known yet (a magnet link): availability messages are read and
   * ignored, and only the extension protocol is used.
   */
  metadataOnly?: boolean;
  /** An accepted socket whose MSE handshake selected RC4 (src/wire/mse.ts): every byte after it
   * is encrypted both ways. */
  cipher?: ConnectionCipher;
  /** Outgoing: open with MSE, offering these methods (see mseOffer). */
  mse?: number;
  /** Incoming: the socket went through an MSE handshake (a plain stream after it, unless `cipher`). */
  acceptedMse?: boolean;
  /** Outgoing: connect from this address (`--bind`). */
  localAddress?: string;
}

/** RC4 both ways; the first `plainBytes` read are decrypted already (put back by the listener). */
export interface ConnectionCipher extends StreamCipher {
  plainBytes: number;
}

/** Longest message accepted before the piece count is known (a bitfield of 8 M pieces). */
const METADATA_ONLY_MAX_MESSAGE = 1024 * 1024 + 1024;

export type PeerState = 'connecting' | 'handshaking' | 'open' | 'closed';

/** A shared download rate limit (src/swarm/rate-limit.ts ReadLimiter). */
export interface ReadLimit {
  add(reader: { pause(): void; resume(): void }): () => void;
  /** The most one read should take (the limit pauses by whole reads). */
  readonly readCap?: number;
  /** `reader`: the one that read, paused at once while the limit is in debt. */
  onRead(bytes: number, reader?: { pause(): void; resume(): void }): void;
}
export type Direction = 'out' | 'in';

export interface PeerConnectionEvents {
  /** The handshake is done. */
  open: [];
  /** The peer's availability changed wholesale: a bitfield, `have all` or `have none`. */
  bitfield: [];
  have: [index: number];
  choke: [];
  unchoke: [];
  /** The peer became interested or not interested in us. */
  interest: [interested: boolean];
  block: [index: number, begin: number, data: Buffer];
  /** The peer asks for a block, or takes a request back. */
  request: [index: number, begin: number, length: number];
  cancel: [index: number, begin: number, length: number];
  /** BEP 6: the peer will not serve one of our requests; it may serve this piece while choking. */
  reject: [index: number, begin: number, length: number];
  allowedFast: [index: number];
  /** BEP 10 message (`payload` is a view: copy what you keep). Id 0 is the handshake. */
  extended: [extId: number, payload: Buffer];
  /** Every message of one socket read has been delivered (a good moment to send requests). */
  drained: [];
  /**
   * A socket read completed no message (part of a block, or a block's header alone): its bytes
   * may need acknowledging at once (see Download.acknowledge in src/swarm/download.ts).
   */
  partRead: [];
  /** The socket's write buffer emptied (after `writeQueued` was high). */
  writable: [];
  close: [reason: string];
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly direction: Direction;
  state: PeerState;
  /** The peer chokes us / is interested in us. */
  peerChoking = true;
  peerInterested = false;
  /** Since when the peer is not interested in us (the connection's start, or its last change). */
  notInterestedSince = Date.now();
  /** We choke the peer / are interested in it. */
  amChoking = true;
  amInterested = false;
  remotePeerId: Buffer | null = null;
  /** Both sides speak BEP 6 / BEP 10. */
  fast = false;
  extended = false;
  bitfield: Bitfield;
  closeReason: string | null = null;
  /** Bytes read from the socket, and when the last read came (progress even below a block). */
  bytesIn = 0;
  /** Bytes of whole `piece` messages received (see `blockBytesIn`). */
  private pieceBytesIn = 0;
  lastReadAt = 0;
  /** Payload bytes of blocks sent to the peer. */
  bytesOut = 0;
  /**
   * Outgoing: the peer closed the connection (or reset it) after it was set up and before its
   * handshake came: what a peer that requires encryption does to a plain handshake.
   */
  hungUpEarly = false;
  /** Outgoing with `mse`: the MSE handshake did not complete (closed, malformed, timed out). */
  mseFailed = false;
  /** How the stream runs once open: plain, plain after an MSE handshake, or RC4 both ways. */
  encryption: ConnectionEncryption = 'none';

  private socket: net.Socket | null = null;
  private readonly framer: Framer;
  private readonly timeouts: PeerTimeouts;
  private timer: NodeJS.Timeout | null = null;
  private timerReason = '';
  /** Calls of `arm` so far: one between a timer's firing and its close means bytes came. */
  private arms = 0;
  private keepalive: NodeJS.Timeout | null = null;
  private messagesSeen = 0;
  /** Control messages since `controlSince` (see MAX_CONTROL_MESSAGES). */
  private controlCount = 0;
  private controlSince = Date.now();
  /** Keep-alives sent by `acknowledge` in the second `ackSecond` (see MAX_ACKS_PER_SECOND). */
  private acksInSecond = 0;
  private ackSecond = 0;
  private started = false;
  private readLimit: ReadLimit | null = null;
  /** The shared download limit holds this connection's reading paused. */
  private heldByLimit = false;
  /** The size of the next socket read (see MAX_READ_SIZE), and the size of the last offered. */
  private readSize = READ_SIZE;
  private offered = 0;
  private offeredBuffer: Buffer | null = null;
  private unlimit: (() => void) | null = null;
  /** This connection's reader as registered with the download limit. */
  private limitReader: { pause(): void; resume(): void } | null = null;
  /** The torrent's pieces; 0 and metadataOnly until a magnet's metadata is known (adopt). */
  private pieceCount: number;
  private metadataOnlyMode: boolean;
  /** What the peer said about its pieces while metadataOnly, for adopt(). */
  private early: EarlyAvailability | null = null;
  /** sendPiece corked the socket; it uncorks at the end of the tick. */
  private corked = false;
  /** Bytes still to read that the listener decrypted already (the cipher's `plainBytes`). */
  private plainLeft: number;
  /** RC4 both ways (an incoming or outgoing MSE handshake selected it), else null. */
  private cipher: StreamCipher | null;
  /** Outgoing with `mse`: until it completes. */
  private mse: MseInitiator | null = null;
  /** The socket closed or failed under us (not a close of ours). */
  private peerEnded = false;
  /** Blocks were sent on this connection (only such a connection is ended gracefully). */
  private sentBlocks = false;
  /** Settles once the socket is closed, after close(reason, graceMs) ended it gracefully. */
  private ending: Promise<void> | null = null;
  /** Messages written in this tick, handed to the socket together at its end (see write). */
  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;

  constructor(private readonly opts: PeerOptions) {
    super();
    this.direction = opts.socket ? 'in' : 'out';
    this.state = opts.socket ? 'handshaking' : 'connecting';
    this.host = opts.host;
    this.port = opts.port;
    this.address = formatPeerAddress(opts);
    this.pieceCount = opts.pieceCount;
    this.metadataOnlyMode = opts.metadataOnly === true;
    this.plainLeft = opts.cipher?.plainBytes ?? 0;
    this.cipher = opts.cipher ?? null;
    if (opts.cipher) this.encryption = 'rc4';
    else if (opts.acceptedMse) this.encryption = 'handshake';
    if (this.metadataOnlyMode) this.early = new EarlyAvailability();
    this.bitfield = new Bitfield(opts.pieceCount);
    this.framer = new Framer({
      maxLength: opts.metadataOnly ? METADATA_ONLY_MAX_MESSAGE : maxMessageLength(opts.pieceCount),
      expectHandshake: true,
    });
    this.timeouts = {
      connectMs: opts.timeouts?.connectMs ?? CONNECT_TIMEOUT_MS,
      handshakeMs: opts.timeouts?.handshakeMs ?? HANDSHAKE_TIMEOUT_MS,
      idleMs: opts.timeouts?.idleMs ?? IDLE_TIMEOUT_MS,
    };
  }

  /** Resolves once the handshake is done; rejects (and closes) on any failure. */
  private opened(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.state === 'open') return resolve();
      if (this.state === 'closed') return reject(new WireError(this.closeReason ?? 'closed'));
      const onOpen = () => {
        this.off('close', onClose);
        resolve();
      };
      const onClose = (reason: string) => {
        this.off('open', onOpen);
        reject(new WireError(reason));
      };
      this.once('open', onOpen);
      this.once('close', onClose);
    });
  }

  /**
   * Outgoing: connect and exchange handshakes. With `mse`, our BitTorrent handshake rides in the
   * MSE handshake (IA), so the peer's follows it at once; the stream then goes on plain or RC4,
   * as the peer selected (RC4 is taken off in place, in the framer's buffer).
   */
  connect(): Promise<void> {
    const done = this.opened();
    const provide = this.opts.mse;
    log('%s connecting%s', this.address, provide === undefined ? '' : ' (encrypted handshake)');
    // Reads go straight into the framer's own buffer: no allocation per chunk.
    const local = this.opts.localAddress;
    const socket = net.connect({
      host: this.host,
      port: this.port,
      ...(local === undefined ? {} : { localAddress: local, family: familyOfIp(local) }),
      onread: {
        buffer: () => this.readBuffer(),
        callback: (n: number) => {
          // Closed: reads go to scratch, and go on only while the socket ends gracefully.
          if (this.state === 'closed') return this.ending !== null;
          if (this.mse) {
            this.onMseBytes(socket, n);
          } else {
            // A read that filled what was offered: the peer sends fast, read more at once.
            if (n === this.offered && this.state === 'open' && this.readSize < MAX_READ_SIZE) {
              this.readSize *= 2;
            }
            if (this.cipher) this.cipher.decrypt.updateInPlace(this.offeredBuffer!.subarray(0, n));
            this.framer.commit(n);
            this.onData(n);
          }
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
      const hs = encodeHandshake(this.opts.infoHash, this.opts.peerId, ourReserved());
      if (provide === undefined) {
        socket.write(hs);
        return;
      }
      this.mse = new MseInitiator(this.opts.infoHash, hs, { provide });
      socket.write(this.mse.hello());
    });
    this.watch(socket);
    return done;
  }

  /** `n` bytes of the MSE exchange read; what follows the exchange goes to the framer. */
  private onMseBytes(socket: net.Socket, n: number): void {
    let rest: Buffer;
    try {
      // The read went where readBuffer() last said: scratch, or the framer's free space when
      // that was offered before the MSE exchange began (it is not committed there).
      const { send, result } = this.mse!.push(Buffer.from(this.offeredBuffer!.subarray(0, n)));
      if (send.length > 0) socket.write(send);
      if (!result) return;
      this.mse = null;
      this.cipher = result.cipher;
      this.encryption = result.cipher ? 'rc4' : 'handshake';
      log('%s encrypted handshake done (%s)', this.address, this.encryption);
      rest = result.rest;
      // Decrypted already, when RC4 was selected.
      if (rest.length > 0) this.framer.push(rest);
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
      return;
    }
    this.onData(n);
  }

  /** Incoming: read the peer's handshake from the accepted socket and answer it. */
  accept(): Promise<void> {
    const socket = this.opts.socket;
    if (!socket) throw new Error('PeerConnection.accept: no socket');
    const done = this.opened();
    this.socket = socket;
    socket.setNoDelay(true);
    this.arm(this.timeouts.handshakeMs, 'handshake timed out');
    socket.on('data', (chunk: Buffer) => {
      if (this.state === 'closed') return;
      try {
        this.framer.push(this.cipher ? this.decrypt(chunk) : chunk);
      } catch (e) {
        this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
        return;
      }
      this.onData(chunk.length);
      if (this.state === 'open' && !this.started) socket.pause();
    });
    this.watch(socket);
    return done;
  }

  /** RC4 off the bytes read, past those put back decrypted by the listener. */
  private decrypt(chunk: Buffer): Buffer {
    const skip = Math.min(this.plainLeft, chunk.length);
    this.plainLeft -= skip;
    // The chunk is ours alone (a socket read, or what the listener put back): decrypted in place.
    if (skip < chunk.length) this.cipher!.decrypt.updateInPlace(chunk.subarray(skip));
    return chunk;
  }

  /**
   * Everything sent goes through here: RC4-encrypted (a copy) on an encrypted connection.
   * `released`: called once the socket holds `buf` no more (at once when it took a copy).
   */
  private sendBytes(socket: net.Socket, buf: Buffer, released?: () => void): void {
    if (this.cipher) {
      socket.write(this.cipher.encrypt.update(buf));
      released?.();
    } else if (released) socket.write(buf, () => released());
    else socket.write(buf);
  }

  private watch(socket: net.Socket): void {
    socket.on('error', (e) => {
      this.peerEnded = true;
      this.close(describeError(e));
    });
    socket.on('close', () => {
      this.peerEnded = true;
      this.close('connection closed by peer');
    });
    socket.on('drain', () => {
      if (this.state === 'open') this.emit('writable');
    });
  }

  /**
   * Where the next socket read goes (also kept in `offeredBuffer`): the framer's free space, or
   * scratch once closed or during an MSE exchange (onMseBytes copies it out). Until the
   * handshake is in, reads take only its remaining bytes, so that what the peer sends after it
   * stays in the socket until start() (reading pauses in between) rather than filling the framer.
   */
  private readBuffer(): Buffer {
    if (this.state !== 'closed' && !this.mse) {
      try {
        const free = this.framer.writable(this.readSize);
        const b =
          this.state === 'open'
            ? free.subarray(0, this.readLimit?.readCap ?? free.length)
            : free.subarray(0, Math.max(1, HANDSHAKE_LENGTH - this.framer.buffered));
        this.offered = b.length;
        this.offeredBuffer = b;
        return b;
      } catch (e) {
        this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
      }
    }
    this.offeredBuffer = scratch ??= Buffer.allocUnsafe(READ_SIZE);
    return this.offeredBuffer;
  }

  /** Count this connection's reads against a shared limit, which pauses it while in debt. */
  limitReads(limit: ReadLimit): void {
    const socket = this.socket;
    if (!socket || this.readLimit) return;
    this.readLimit = limit;
    this.limitReader = {
      pause: () => {
        this.heldByLimit = true;
        socket.pause();
      },
      resume: () => {
        this.heldByLimit = false;
        if (this.started && this.state === 'open') socket.resume();
      },
    };
    this.unlimit = limit.add(this.limitReader);
  }

  private onData(n: number): void {
    if (this.state === 'closed') return;
    this.readLimit?.onRead(n, this.limitReader ?? undefined);
    this.bytesIn += n;
    this.lastReadAt = Date.now();
    try {
      if (this.state === 'handshaking') {
        const hs = this.framer.nextHandshake();
        if (!hs) return;
        this.onHandshake(hs);
      }
      if (this.state === 'open') this.arm(this.timeouts.idleMs, 'idle timeout');
      this.drain(true);
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
    }
  }

  private onHandshake(hs: Handshake): void {
    if (!hs.infoHash.equals(this.opts.infoHash)) {
      throw new WireError('handshake for another torrent (info hash differs)');
    }
    if (hs.peerId.equals(this.opts.peerId)) {
      // Our own handshake came back: a connection to ourselves, or a peer echoing our bytes.
      throw new WireError('handshake carries our own peer id (a connection to ourselves)');
    }
    if (this.direction === 'in') {
      if (this.socket) {
        this.sendBytes(
          this.socket,
          encodeHandshake(this.opts.infoHash, this.opts.peerId, ourReserved()),
        );
      }
    }
    this.remotePeerId = hs.peerId;
    this.fast = supports(hs.reserved, RESERVED_FAST);
    this.extended = supports(hs.reserved, RESERVED_EXTENDED);
    this.state = 'open';
    log(
      '%s handshake ok (%s%s%s, %s)',
      this.address,
      printableId(hs.peerId),
      this.fast ? ', fast' : '',
      this.extended ? ', extensions' : '',
      this.direction === 'in' ? 'incoming' : 'outgoing',
    );
    this.arm(this.timeouts.idleMs, 'idle timeout');
    this.keepalive = setInterval(() => this.send({ type: 'keep-alive' }), KEEPALIVE_INTERVAL_MS);
    this.keepalive.unref();
    this.emit('open');
  }

  /**
   * Send what we have (and our extension handshake, a ready BEP 10 payload, when both sides speak
   * BEP 10), then start delivering the peer's messages. Until then they wait in the framer, so
   * that the owner can attach its listeners without missing the peer's bitfield.
   */
  start(have: Bitfield, extensionHandshake?: Buffer): void {
    if (this.started || this.state !== 'open') return;
    this.started = true;
    if (this.fast && have.count === 0) this.send({ type: 'have-none' });
    else if (this.fast && have.isComplete()) this.send({ type: 'have-all' });
    else if (have.count > 0) this.send({ type: 'bitfield', bitfield: have.toBuffer() });
    if (this.extended && extensionHandshake) this.write(encodeExtended(0, extensionHandshake));
    try {
      this.drain();
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
    }
    // Held by the download limit (another connection's reads put it in debt): its resume()
    // starts reading; resuming here would read past it, unlimited.
    if (this.state === 'open' && !this.heldByLimit) this.socket?.resume();
  }

  /** `read`: after a socket read (one that completed no message is said as 'partRead'). */
  private drain(read = false): void {
    if (!this.started) return;
    let n = 0;
    for (let m = this.framer.next(); m && this.state === 'open'; m = this.framer.next()) {
      this.onMessage(m);
      n++;
    }
    if (this.state !== 'open') return;
    if (n > 0) this.emit('drained');
    else if (read) this.emit('partRead');
  }

  /** One more control message: a WireError past MAX_CONTROL_MESSAGES in CONTROL_WINDOW_MS. */
  private countControl(): void {
    if (++this.controlCount <= MAX_CONTROL_MESSAGES) return;
    const now = Date.now();
    if (now - this.controlSince >= CONTROL_WINDOW_MS) {
      this.controlSince = now;
      this.controlCount = 1;
      return;
    }
    throw new WireError(
      `floods control messages (over ${MAX_CONTROL_MESSAGES} in ${CONTROL_WINDOW_MS / 1000} s)`,
    );
  }

  /**
   * A bitfield / have-all (null) after other messages: its new pieces as `have`s. Costs the
   * message's own length, or nothing once the peer has every piece: a peer repeating have-all
   * cannot hold the event loop for O(pieces) per 5-byte message.
   */
  private lateHaves(bf: Bitfield | null): void {
    for (const i of this.bitfield.merge(bf)) this.emit('have', i);
  }

  private onMessage(m: Message): void {
    // The availability message must come first; the extension handshake may precede it
    // (BEP 10 sends it right after the handshake, and libtorrent does).
    const first = this.messagesSeen === 0;
    if (m.type !== 'keep-alive' && m.type !== 'extended' && m.type !== 'port') this.messagesSeen++;
    if (m.type !== 'piece' && m.type !== 'request' && m.type !== 'cancel' && m.type !== 'have') {
      this.countControl();
    }
    if (this.metadataOnlyMode && m.type !== 'extended') {
      this.onEarlyMessage(m);
      return;
    }
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
      case 'not-interested': {
        const interested = m.type === 'interested';
        if (this.peerInterested !== interested) {
          this.peerInterested = interested;
          if (!interested) this.notInterestedSince = Date.now();
          this.emit('interest', interested);
        }
        return;
      }
      case 'have':
        this.checkIndex(m.index, 'have');
        if (!this.bitfield.has(m.index)) {
          this.bitfield.set(m.index);
          this.emit('have', m.index);
        } else {
          // A piece it announced before says nothing new: a control message (a peer cycling
          // through its `have`s at line rate was kept for a whole run).
          this.countControl();
        }
        return;
      case 'bitfield': {
        if (!first) {
          // aria2c sends have-none, then a bitfield: take a late one as a list of haves (it
          // never takes a piece away, so piece availability stays consistent).
          this.lateHaves(Bitfield.fromWire(m.bitfield, this.pieceCount));
          return;
        }
        this.bitfield = Bitfield.fromWire(m.bitfield, this.pieceCount);
        this.emit('bitfield');
        return;
      }
      case 'have-all':
      case 'have-none': {
        if (!this.fast) throw new WireError(`${m.type} without the fast extension`);
        if (!first) {
          // A late have-none adds nothing.
          if (m.type === 'have-all') this.lateHaves(null);
          return;
        }
        const bf = new Bitfield(this.pieceCount);
        if (m.type === 'have-all') bf.setAll();
        this.bitfield = bf;
        this.emit('bitfield');
        return;
      }
      case 'piece':
        this.pieceBytesIn += PIECE_HEADER_BYTES + m.block.length;
        this.emit('block', m.index, m.begin, m.block);
        return;
      case 'request':
        this.emit('request', m.index, m.begin, m.length);
        // A request from a peer we unchoke says it is interested, whatever it said before:
        // taken as such, it holds an upload slot and the choker may choke it, instead of being
        // served outside the slots for as long as it stays unchoked. (A request while choked
        // is refused and changes nothing: it must not bring an unchoke that serves the rest.)
        if (!this.peerInterested && !this.amChoking && this.state === 'open') {
          this.peerInterested = true;
          this.emit('interest', true);
        }
        return;
      case 'cancel':
        this.emit('cancel', m.index, m.begin, m.length);
        return;
      case 'reject':
        if (!this.fast) throw new WireError('reject without the fast extension');
        this.emit('reject', m.index, m.begin, m.length);
        return;
      case 'allowed-fast':
        if (!this.fast) throw new WireError('allowed fast without the fast extension');
        // An index out of range is ignored: BEP 6 lets a peer send these before it knows much.
        if (m.index < this.pieceCount) this.emit('allowedFast', m.index);
        return;
      case 'extended':
        if (!this.extended) throw new WireError('extension message without the extension protocol');
        this.emit('extended', m.extId, m.payload);
        return;
      case 'suggest':
      case 'port':
      case 'unknown':
        return;
    }
  }

  /**
   * Before the metadata is known, pieces mean nothing yet: availability, interest, choking and
   * `allowed fast` are recorded for adopt(); only a block we never asked for is wrong.
   */
  private onEarlyMessage(m: Message): void {
    const early = this.early!;
    switch (m.type) {
      case 'piece':
        throw new WireError('sent a block we did not request');
      case 'choke':
      case 'unchoke':
        this.peerChoking = m.type === 'choke';
        return;
      case 'interested':
      case 'not-interested':
        if (this.peerInterested && m.type === 'not-interested')
          this.notInterestedSince = Date.now();
        this.peerInterested = m.type === 'interested';
        return;
      case 'bitfield':
        early.bitfield(m.bitfield);
        return;
      case 'have':
        early.have(m.index);
        return;
      case 'have-all':
      case 'have-none':
        if (!this.fast) throw new WireError(`${m.type} without the fast extension`);
        if (m.type === 'have-all') early.haveAll();
        else early.haveNone();
        return;
      case 'allowed-fast':
        if (!this.fast) throw new WireError('allowed fast without the fast extension');
        early.allowed(m.index);
        return;
      default:
        return;
    }
  }

  /** Opened for a magnet link's metadata only, and not adopted yet. */
  get metadataOnly(): boolean {
    return this.metadataOnlyMode;
  }

  /**
   * Metadata-only: the peer has shown pieces (`have all`, a bitfield, `have`s) that fit a torrent
   * of `pieceCount` pieces, so that telling it we are interested before adopt() is right.
   */
  showsPieces(pieceCount: number): boolean {
    return this.piecesShown(pieceCount) > 0;
  }

  /**
   * Metadata-only: how many pieces of a torrent of `pieceCount` pieces the peer has shown so far
   * (0 when none, or when what it sent does not fit: adopt() closes it).
   */
  piecesShown(pieceCount: number): number {
    if (!this.metadataOnlyMode || !this.early || this.state !== 'open') return 0;
    try {
      return this.early.resolve(pieceCount).count;
    } catch {
      return 0;
    }
  }

  /**
   * The metadata is known: a metadata-only connection becomes an ordinary one for a torrent of
   * `pieceCount` pieces, and nothing the peer said is lost (docs/DESIGN.md, "Magnet hand-over").
   * Not started yet: it is started as usual with `have` and `extensionHandshake`. Started (it
   * served the metadata): what it sent meanwhile becomes its bitfield, we tell it our pieces
   * with `have`s (it was told none) and send our new extension handshake, then the recorded
   * state is replayed as events — `bitfield` (when it sent availability), `unchoke`, `interest`,
   * `allowedFast` — so attach listeners first. Availability that does not fit the piece count
   * closes the connection.
   */
  adopt(pieceCount: number, have: Bitfield, extensionHandshake?: Buffer): void {
    if (!this.metadataOnlyMode || this.state !== 'open') return;
    const early = this.early!;
    this.metadataOnlyMode = false;
    this.early = null;
    this.pieceCount = pieceCount;
    this.framer.setMaxLength(maxMessageLength(pieceCount));
    this.bitfield = new Bitfield(pieceCount);
    if (!this.started) {
      this.start(have, extensionHandshake);
      return;
    }
    try {
      this.bitfield = early.resolve(pieceCount);
    } catch (e) {
      this.close(e instanceof TdlError ? e.message : `internal error: ${(e as Error).message}`);
      return;
    }
    // We sent `have none` or an empty bitfield at start: what we have now, in one write.
    const haves: Buffer[] = [];
    for (let i = 0; i < pieceCount; i++) if (have.has(i)) haves.push(encodeHave(i));
    if (haves.length > 0) this.write(Buffer.concat(haves));
    if (this.extended && extensionHandshake) this.write(encodeExtended(0, extensionHandshake));
    // `have`s alone (no bitfield first) count too: the owner reads the whole bitfield.
    if (early.seen || this.bitfield.count > 0) this.emit('bitfield');
    if (this.state === 'open' && !this.peerChoking) this.emit('unchoke');
    if (this.state === 'open' && this.peerInterested) this.emit('interest', true);
    for (const index of early.allowedFast) {
      if (this.state === 'open' && index < pieceCount) this.emit('allowedFast', index);
    }
  }

  private checkIndex(index: number, what: string): void {
    if (index >= this.pieceCount) throw new WireError(`${what} for nonexistent piece ${index}`);
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

  choke(): void {
    if (this.amChoking) return;
    this.amChoking = true;
    this.send({ type: 'choke' });
  }

  unchoke(): void {
    if (!this.amChoking) return;
    this.amChoking = false;
    this.send({ type: 'unchoke' });
  }

  have(index: number): void {
    this.write(encodeHave(index));
  }

  /**
   * A keep-alive, sent for the TCP acknowledgement it carries at once (see Download.acknowledge
   * in src/swarm/download.ts): nothing else is due to the peer. At most MAX_ACKS_PER_SECOND a second;
   * false when this one was not sent.
   */
  acknowledge(now = Date.now()): boolean {
    const second = Math.floor(now / 1000);
    if (second !== this.ackSecond) {
      this.ackSecond = second;
      this.acksInSecond = 0;
    }
    if (this.acksInSecond >= MAX_ACKS_PER_SECOND) return false;
    this.acksInSecond++;
    this.send({ type: 'keep-alive' });
    return true;
  }

  /** Send many requests in one write (one system call for the batch). */
  request(reqs: readonly { index: number; begin: number; length: number }[]): void {
    if (reqs.length === 0) return;
    const buf = Buffer.allocUnsafe(REQUEST_MESSAGE_BYTES * reqs.length);
    let at = 0;
    for (const r of reqs) {
      writeRequest(buf, at, r.index, r.begin, r.length);
      at += REQUEST_MESSAGE_BYTES;
    }
    this.write(buf);
  }

  cancel(index: number, begin: number, length: number): void {
    this.write(encodeCancel(index, begin, length));
  }

  /**
   * BEP 6 `reject`; only sent where the peer speaks the fast extension. One while the socket
   * holds more than MAX_REFUSE_QUEUED closes the connection instead: the peer asks faster than
   * it reads the answers.
   */
  reject(index: number, begin: number, length: number): void {
    if (!this.fast || this.state !== 'open') return;
    if (this.closedForFlooding()) return;
    this.write(encodeReject(index, begin, length));
  }

  /**
   * Before a refusal (a `reject`, or ut_metadata's): closes the connection and returns true when
   * the socket holds more than MAX_REFUSE_QUEUED unsent.
   */
  closedForFlooding(): boolean {
    if (this.writeQueued <= MAX_REFUSE_QUEUED) return false;
    this.close('floods requests and does not read the answers');
    return true;
  }

  allowedFast(index: number): void {
    if (this.fast) this.send({ type: 'allowed-fast', index });
  }

  sendExtended(extId: number, payload: Buffer): void {
    if (this.extended) this.write(encodeExtended(extId, payload));
  }

  /**
   * A block of a piece, without copying it. The socket stays corked until the end of this tick,
   * so that the blocks sent in one tick (a whole piece whose read just finished) leave in one
   * system call rather than one per block. `released`, when given, is called once the socket
   * holds `data` no more (written out, failed, or never taken): until then a view keeps the
   * whole buffer it is cut from alive.
   */
  sendPiece(index: number, begin: number, data: Buffer, released?: () => void): void {
    const socket = this.socket;
    if (this.state !== 'open' || !socket || this.overfull()) {
      released?.();
      return;
    }
    this.sentBlocks = true;
    // Messages written before the block go before it.
    this.flush();
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    this.sendBytes(socket, encodePieceHeader(index, begin, data.length));
    this.sendBytes(socket, data, released);
    this.bytesOut += data.length;
  }

  /** Our download limit holds this socket unread (what the peer sent waits in the kernel). */
  get readHeld(): boolean {
    return this.heldByLimit;
  }

  /**
   * Bytes of `piece` messages received so far, the one still arriving included: what tells a
   * peer that sends blocks, however slowly, from one that only keeps the connection alive
   * (keep-alives, `have`s, extension messages) while our requests wait.
   */
  get blockBytesIn(): number {
    return this.pieceBytesIn + this.framer.partialPiece;
  }

  /** Bytes waiting to be sent (a peer that does not read makes this grow). */
  get writeQueued(): number {
    return (this.socket?.writableLength ?? 0) + this.outgoingBytes;
  }

  /**
   * The messages of one tick leave in one socket write, at the end of the tick (or before the
   * next block, in order): a socket write costs about 150 bytes of bookkeeping until it is
   * sent, so a flood of 17-byte `reject`s to a peer that does not read cost ten times their
   * bytes, and MAX_WRITE_QUEUED would not have bounded the memory.
   */
  private write(buf: Buffer): void {
    if (this.state !== 'open' || !this.socket || this.overfull()) return;
    if (this.outgoing.length === 0) process.nextTick(() => this.flush());
    this.outgoing.push(buf);
    this.outgoingBytes += buf.length;
  }

  private flush(): void {
    if (this.outgoing.length === 0) return;
    const bufs = this.outgoing;
    const bytes = this.outgoingBytes;
    this.outgoing = [];
    this.outgoingBytes = 0;
    if (this.state !== 'open' || !this.socket) return;
    this.sendBytes(this.socket, bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs, bytes));
  }

  /** More than MAX_WRITE_QUEUED unsent: the peer does not read, and the connection is closed. */
  private overfull(): boolean {
    const queued = this.writeQueued;
    if (queued <= MAX_WRITE_QUEUED) return false;
    this.close(`does not read what we send (${Math.round(queued / (1024 * 1024))} MiB unsent)`);
    return true;
  }

  /**
   * Close the connection (idempotent). Emits 'close' once with the reason. With `graceMs` (the
   * end of a run, a healthy connection), on a connection that was sent blocks, what was sent
   * still reaches the peer: the socket is
   * ended (FIN after every byte queued) rather than destroyed, and what the peer still sends is
   * read and dropped until it closes its side, or `graceMs` pass. Destroyed at once, a socket
   * with bytes still unread is reset by the kernel, and the peer then loses the blocks it had
   * not read yet: a seed stopping at --seed-ratio 1 left its one leecher short of them.
   * `closed()` says when the socket is gone.
   */
  close(reason: string, graceMs = 0): void {
    if (this.state === 'closed') return;
    if (this.state === 'handshaking' && this.direction === 'out') {
      if (this.opts.mse !== undefined) this.mseFailed = this.mse !== null;
      else this.hungUpEarly = this.peerEnded;
    }
    // What was written before the close still goes out, as it would unbatched.
    if (this.socket?.writable) this.flush();
    this.outgoing = [];
    this.outgoingBytes = 0;
    this.state = 'closed';
    this.closeReason = reason;
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = null;
    this.keepalive = null;
    this.unlimit?.();
    this.unlimit = null;
    const socket = this.socket;
    if (socket && graceMs > 0 && this.sentBlocks && socket.writable && !this.peerEnded) {
      this.ending = new Promise<void>((resolve) => {
        const kill = setTimeout(() => socket.destroy(), graceMs);
        kill.unref();
        socket.once('close', () => {
          clearTimeout(kill);
          resolve();
        });
      });
      socket.end();
      socket.resume();
    } else socket?.destroy();
    log('%s closed: %s', this.address, reason);
    this.emit('close', reason);
  }

  /** Settles once the socket is gone (at once unless close() ended it gracefully). */
  closed(): Promise<void> {
    return this.ending ?? Promise.resolve();
  }

  private arm(ms: number, reason: string): void {
    this.arms++;
    // Re-arming on every chunk is hot: refresh the running timer when nothing else changed.
    if (this.timer && this.timerReason === reason) {
      this.timer.refresh();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerReason = reason;
    const timer = setTimeout(() => {
      // Closed after one more turn of the event loop's reads, unless bytes came meanwhile (they
      // re-arm it): a process stopped (SIGSTOP) longer than the timeout runs its due timers on
      // waking before it reads what its peers sent while it was stopped.
      const arms = this.arms;
      setImmediate(() => {
        if (this.timer === timer && this.arms === arms) this.close(reason);
      });
    }, ms);
    timer.unref();
    this.timer = timer;
  }
}

/** Reads that arrive after a connection closed land here and are ignored; MSE bytes too. */
let scratch: Buffer | undefined;

function printableId(id: Buffer): string {
  return id.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
}
