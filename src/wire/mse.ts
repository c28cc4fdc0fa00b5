/**
 * Message stream encryption (MSE, also "protocol encryption"), the receiving side (the dialling
 * side is src/wire/mse-initiator.ts), to agree on a plaintext stream where the peer allows one.
 * aria2c (and others) open every connection with this handshake and, when the peer closes it,
 * wait about a second before they try a plain BitTorrent handshake: answering it saves that
 * second on every incoming connection.
 *
 *   1 A→B  Ya (96 bytes), PadA (0–512 bytes)
 *   2 B→A  Yb (96 bytes), PadB (0–512 bytes)
 *   3 A→B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
 *          ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
 *   4 B→A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the stream
 *
 * Y = 2^X mod P (the 768-bit prime below), S the shared secret (96 bytes), SKEY the info hash,
 * HASH SHA-1, VC eight zero bytes, ENCRYPT RC4 keyed with HASH('keyA', S, SKEY) (A's bytes) or
 * HASH('keyB', S, SKEY) (B's), its first 1024 bytes of key stream discarded. We select
 * plaintext (crypto_select 1) when offered, unless `rc4Only` (`--encryption require`): after
 * step 4 both sides send in the clear, and IA (the initiator's first bytes, usually its
 * BitTorrent handshake, sent before it knew our choice) is the only part of its stream that is
 * decrypted. A peer that offers RC4 only gets RC4: the whole connection is then encrypted both
 * ways (PeerConnection's `cipher`).
 *
 * Pure: `MseResponder.push` takes the bytes received and returns what to send and, at the end,
 * the decrypted IA and the bytes after it; it throws WireError on anything malformed.
 */
import { createDiffieHellman, createHash, randomBytes, type DiffieHellman } from 'node:crypto';
import { WireError } from '../errors.js';
import { Rc4 } from './rc4.js';

/** The MSE prime (768 bits) and generator. */
export const MSE_PRIME = Buffer.from(
  'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563',
  'hex',
);
export const MSE_GENERATOR = Buffer.from([2]);
/** Public keys and the secret are this long. */
export const MSE_KEY_BYTES = 96;
/** Longest padding in steps 1–4. */
export const MSE_MAX_PAD = 512;
/** crypto_provide / crypto_select bits. */
export const CRYPTO_PLAINTEXT = 0x01;
export const CRYPTO_RC4 = 0x02;
/** Longest IA accepted (a BitTorrent handshake and a few messages). */
const MSE_MAX_IA = 4096;

/** The first bytes of a plain BitTorrent handshake: an MSE stream starts with anything else. */
const PLAIN_PREFIX = Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol')]);

/**
 * Does a connection that began with these bytes speak the plain BitTorrent handshake ('plain'),
 * MSE ('mse'), or is it too early to tell (null)?
 */
export function sniffHandshake(first: Buffer): 'plain' | 'mse' | null {
  const n = Math.min(first.length, PLAIN_PREFIX.length);
  if (!first.subarray(0, n).equals(PLAIN_PREFIX.subarray(0, n))) return 'mse';
  return n === PLAIN_PREFIX.length ? 'plain' : null;
}

/** HASH of the spec: SHA-1 of the parts in order. */
export const sha1 = (...parts: (string | Buffer)[]): Buffer => {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** A big-endian number as exactly `n` bytes (Node drops leading zeros). */
export function pad(b: Buffer, n: number): Buffer {
  if (b.length === n) return b;
  if (b.length > n) throw new WireError('MSE key longer than the prime');
  return Buffer.concat([Buffer.alloc(n - b.length), b]);
}

/** The two RC4 streams of a connection that selected RC4, each where the handshake left it. */
export interface StreamCipher {
  /** Our bytes to the peer (keyB when the peer dialled, keyA when we did). */
  encrypt: Rc4;
  /** The peer's bytes to us. */
  decrypt: Rc4;
}

export interface MseResult {
  /** Send this (step 4). */
  reply: Buffer;
  /** The initiator's payload: its first stream bytes, decrypted. */
  ia: Buffer;
  /** Bytes received after IA, decrypted when the stream is encrypted. */
  rest: Buffer;
  /** Null: plaintext selected. Else every later byte is RC4-encrypted both ways. */
  cipher: StreamCipher | null;
}

export interface MseOptions {
  /** Our private key (tests); random otherwise. */
  privateKey?: Buffer;
  /** Length of PadB (tests); random in [0, 64) otherwise. */
  padLength?: number;
  /** Select RC4 even when plaintext is offered, and refuse a peer that offers plaintext only
   * (`--encryption require`). */
  rc4Only?: boolean;
}

type Phase = 'ya' | 'sync' | 'header' | 'padc' | 'ia' | 'done';

let shared: DiffieHellman | null = null;

/**
 * One key pair for every responder. Setting up a group from our own prime checks the prime,
 * about 16 ms of blocked event loop, which any stranger could make us pay per connection. The
 * secret still differs per connection (it takes the peer's key), and MSE only hides the
 * protocol from traffic shaping: it was never meant to keep the contents secret.
 */
export function sharedGroup(): DiffieHellman {
  if (!shared) {
    shared = createDiffieHellman(MSE_PRIME, MSE_GENERATOR);
    shared.generateKeys();
  }
  return shared;
}

/** A key pair from a given private key (tests). */
export function testGroup(privateKey: Buffer): DiffieHellman {
  const dh = createDiffieHellman(MSE_PRIME, MSE_GENERATOR);
  dh.setPrivateKey(privateKey);
  dh.generateKeys();
  return dh;
}

/** The receiving side of one MSE handshake (SKEY: the info hash of our torrent). */
export class MseResponder {
  #phase: Phase = 'ya';
  #buf: Buffer = Buffer.alloc(0);
  readonly #dh: DiffieHellman;
  readonly #skey: Buffer;
  readonly #padLength: number;
  readonly #rc4Only: boolean;
  #secret: Buffer | null = null;
  #req1: Buffer | null = null;
  #decrypt: Rc4 | null = null;
  #provide = 0;
  #padC = 0;
  #iaLength = 0;

  constructor(skey: Buffer, opts: MseOptions = {}) {
    this.#skey = skey;
    this.#dh = opts.privateKey ? testGroup(opts.privateKey) : sharedGroup();
    this.#padLength = opts.padLength ?? randomBytes(1)[0]! % 64;
    this.#rc4Only = opts.rc4Only === true;
  }

  /** Our public key, as sent in step 2. */
  get publicKey(): Buffer {
    return pad(this.#dh.getPublicKey(), MSE_KEY_BYTES);
  }

  /**
   * Takes received bytes. Returns bytes to send now (step 2, then step 4) and, once the
   * handshake is complete, the result; `send` may be empty. Throws WireError.
   */
  push(data: Buffer): { send: Buffer; result: MseResult | null } {
    if (this.#phase === 'done') throw new WireError('MSE handshake already complete');
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    return runSteps(() => this.#step());
  }

  /** One phase forward, or null when more bytes are needed. */
  #step(): { send?: Buffer; result?: MseResult } | null {
    const b = this.#buf;
    switch (this.#phase) {
      case 'ya': {
        if (b.length < MSE_KEY_BYTES) return null;
        const s = sharedSecret(this.#dh, b.subarray(0, MSE_KEY_BYTES));
        this.#secret = s;
        this.#req1 = sha1('req1', s);
        this.#buf = b.subarray(MSE_KEY_BYTES);
        this.#phase = 'sync';
        return { send: Buffer.concat([this.publicKey, randomBytes(this.#padLength)]) };
      }
      case 'sync': {
        // PadA (0–512 bytes) comes before HASH('req1', S): find the hash.
        const at = b.indexOf(this.#req1!);
        if (at < 0) {
          if (b.length >= MSE_MAX_PAD + 20) throw new WireError('MSE: no req1 hash after PadA');
          return null;
        }
        if (at > MSE_MAX_PAD) throw new WireError('MSE: PadA longer than 512 bytes');
        if (b.length < at + 40) return null;
        const got = b.subarray(at + 20, at + 40);
        const want = xor(sha1('req2', this.#skey), sha1('req3', this.#secret!));
        if (!got.equals(want)) throw new WireError('MSE: handshake for another torrent');
        this.#decrypt = new Rc4(sha1('keyA', this.#secret!, this.#skey));
        this.#buf = b.subarray(at + 40);
        this.#phase = 'header';
        return {};
      }
      case 'header': {
        if (b.length < 14) return null;
        const h = this.#decrypt!.update(b.subarray(0, 14));
        if (!h.subarray(0, 8).equals(Buffer.alloc(8))) throw new WireError('MSE: bad VC');
        this.#provide = h.readUInt32BE(8);
        this.#padC = h.readUInt16BE(12);
        if (this.#padC > MSE_MAX_PAD) throw new WireError('MSE: PadC longer than 512 bytes');
        if ((this.#provide & (CRYPTO_PLAINTEXT | CRYPTO_RC4)) === 0) {
          throw new WireError('MSE: the peer offers neither plaintext nor RC4');
        }
        if (this.#rc4Only && (this.#provide & CRYPTO_RC4) === 0) {
          throw new WireError('MSE: the peer offers plaintext only (encryption required)');
        }
        this.#buf = b.subarray(14);
        this.#phase = 'padc';
        return {};
      }
      case 'padc': {
        if (b.length < this.#padC + 2) return null;
        const p = this.#decrypt!.update(b.subarray(0, this.#padC + 2));
        this.#iaLength = p.readUInt16BE(this.#padC);
        if (this.#iaLength > MSE_MAX_IA) throw new WireError('MSE: initial payload too long');
        this.#buf = b.subarray(this.#padC + 2);
        this.#phase = 'ia';
        return {};
      }
      case 'ia': {
        if (b.length < this.#iaLength) return null;
        const ia = this.#decrypt!.update(b.subarray(0, this.#iaLength));
        // Plaintext when offered (nothing to do per byte); RC4 when it is all the peer offers
        // (transmission's default, "prefer encryption", offers RC4 alone on its connections).
        const plain = !this.#rc4Only && (this.#provide & CRYPTO_PLAINTEXT) !== 0;
        const raw = b.subarray(this.#iaLength);
        const rest = plain ? Buffer.from(raw) : this.#decrypt!.update(raw);
        this.#buf = Buffer.alloc(0);
        this.#phase = 'done';
        const step4 = Buffer.alloc(14);
        step4.writeUInt32BE(plain ? CRYPTO_PLAINTEXT : CRYPTO_RC4, 8);
        const encrypt = new Rc4(sha1('keyB', this.#secret!, this.#skey));
        const reply = encrypt.update(step4);
        const cipher = plain ? null : { encrypt, decrypt: this.#decrypt! };
        return { result: { reply, ia, rest, cipher } };
      }
      case 'done':
        return null;
    }
  }
}

/** S: the secret shared with the peer whose public key is `theirs`, as 96 bytes. */
export function sharedSecret(dh: DiffieHellman, theirs: Buffer): Buffer {
  try {
    return pad(dh.computeSecret(theirs), MSE_KEY_BYTES);
  } catch (e) {
    throw e instanceof WireError ? e : new WireError('MSE: bad public key');
  }
}

/**
 * Runs a handshake's phases over the bytes buffered until one needs more (null) or one yields
 * the result; what the phases have to send is returned together.
 */
export function runSteps<R>(step: () => { send?: Buffer; result?: R } | null): {
  send: Buffer;
  result: R | null;
} {
  const sends: Buffer[] = [];
  for (;;) {
    const s = step();
    if (s === null) return { send: Buffer.concat(sends), result: null };
    if (s.send) sends.push(s.send);
    if (s.result) return { send: Buffer.concat(sends), result: s.result };
  }
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}
