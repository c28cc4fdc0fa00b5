/**
 * Message stream encryption, the dialling side (A in src/wire/mse.ts's steps): used for peers
 * that hang up on a plain BitTorrent handshake (libtorrent with `out_enc_policy` forced,
 * Transmission with "require encryption"), or for every connection under `--encryption prefer`
 * and `require`.
 *
 *   1 A→B  Ya, PadA                                       hello()
 *   2 B→A  Yb, PadB                                       push(): 96 bytes, then step 3 to send
 *   3 A→B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
 *          ENCRYPT(VC, crypto_provide, len(PadC) = 0, len(IA), IA)
 *   4 B→A  ENCRYPT(VC, crypto_select, len(PadD), PadD)   push(): found after PadB, then the stream
 *
 * IA is our BitTorrent handshake, so the peer's handshake follows step 4 with no round trip more.
 * B's encrypted VC is the first 8 bytes of its key stream, searched for within PadB's 512 bytes.
 * crypto_select must be one of the methods we offered. After step 4 the stream is plain, or RC4
 * both ways (`cipher`), as the peer chose.
 *
 * Pure like the responder: push() takes received bytes, returns what to send and, at the end, the
 * result; it throws WireError on anything malformed.
 */
import { randomBytes, type DiffieHellman } from 'node:crypto';
import { WireError } from '../errors.js';
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MSE_KEY_BYTES,
  MSE_MAX_PAD,
  pad,
  runSteps,
  sha1,
  sharedGroup,
  sharedSecret,
  testGroup,
  xor,
  type StreamCipher,
} from './mse.js';
import { Rc4 } from './rc4.js';

export interface MseInitiatorOptions {
  /** The methods offered: CRYPTO_PLAINTEXT | CRYPTO_RC4 (the peer picks), or CRYPTO_RC4 alone. */
  provide: number;
  /** Our private key (tests); the shared key pair otherwise. */
  privateKey?: Buffer;
  /** Length of PadA (tests); random in [0, 64) otherwise. */
  padLength?: number;
}

export interface MseInitiatorResult {
  /** Bytes received after PadD, decrypted when the stream is encrypted. */
  rest: Buffer;
  /** Null: the peer selected plaintext. Else every later byte is RC4-encrypted both ways. */
  cipher: StreamCipher | null;
}

type Phase = 'yb' | 'sync' | 'select' | 'padd' | 'done';

export class MseInitiator {
  #phase: Phase = 'yb';
  #buf: Buffer = Buffer.alloc(0);
  readonly #dh: DiffieHellman;
  readonly #skey: Buffer;
  readonly #ia: Buffer;
  readonly #provide: number;
  readonly #padLength: number;
  #encrypt: Rc4 | null = null;
  #decrypt: Rc4 | null = null;
  /** B's encrypted VC: where step 4 starts. */
  #vc: Buffer | null = null;
  #select = 0;
  #padD = 0;

  /** `skey`: the info hash; `ia`: our BitTorrent handshake, sent (encrypted) in step 3. */
  constructor(skey: Buffer, ia: Buffer, opts: MseInitiatorOptions) {
    if ((opts.provide & (CRYPTO_PLAINTEXT | CRYPTO_RC4)) === 0 || opts.provide & ~3) {
      throw new RangeError('MseInitiator: provide plaintext and/or RC4');
    }
    if (ia.length > 0xffff) throw new RangeError('MseInitiator: IA too long');
    this.#skey = skey;
    this.#ia = ia;
    this.#provide = opts.provide;
    this.#dh = opts.privateKey ? testGroup(opts.privateKey) : sharedGroup();
    this.#padLength = opts.padLength ?? randomBytes(1)[0]! % 64;
  }

  /** Step 1: our public key and PadA. */
  hello(): Buffer {
    return Buffer.concat([
      pad(this.#dh.getPublicKey(), MSE_KEY_BYTES),
      randomBytes(this.#padLength),
    ]);
  }

  /** Takes received bytes; returns bytes to send now (step 3) and, at the end, the result. */
  push(data: Buffer): { send: Buffer; result: MseInitiatorResult | null } {
    if (this.#phase === 'done') throw new WireError('MSE handshake already complete');
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    return runSteps(() => this.#step());
  }

  #step(): { send?: Buffer; result?: MseInitiatorResult } | null {
    const b = this.#buf;
    switch (this.#phase) {
      case 'yb': {
        if (b.length < MSE_KEY_BYTES) return null;
        const s = sharedSecret(this.#dh, b.subarray(0, MSE_KEY_BYTES));
        this.#encrypt = new Rc4(sha1('keyA', s, this.#skey));
        this.#decrypt = new Rc4(sha1('keyB', s, this.#skey));
        // The peer's VC encrypted is its key stream's first 8 bytes (VC is zeros).
        this.#vc = this.#decrypt.update(Buffer.alloc(8));
        const header = Buffer.alloc(16);
        header.writeUInt32BE(this.#provide, 8);
        header.writeUInt16BE(0, 12); // len(PadC)
        header.writeUInt16BE(this.#ia.length, 14);
        const send = Buffer.concat([
          sha1('req1', s),
          xor(sha1('req2', this.#skey), sha1('req3', s)),
          this.#encrypt.update(header),
          this.#encrypt.update(this.#ia),
        ]);
        this.#buf = b.subarray(MSE_KEY_BYTES);
        this.#phase = 'sync';
        return { send };
      }
      case 'sync': {
        // PadB (0–512 bytes) comes before step 4's VC.
        const at = b.indexOf(this.#vc!);
        if (at < 0) {
          if (b.length >= MSE_MAX_PAD + 8) throw new WireError('MSE: no VC after PadB');
          return null;
        }
        if (at > MSE_MAX_PAD) throw new WireError('MSE: PadB longer than 512 bytes');
        this.#buf = b.subarray(at + 8);
        this.#phase = 'select';
        return {};
      }
      case 'select': {
        if (b.length < 6) return null;
        const h = this.#decrypt!.update(b.subarray(0, 6));
        this.#select = h.readUInt32BE(0);
        this.#padD = h.readUInt16BE(4);
        const chosen = this.#select;
        if ((chosen !== CRYPTO_PLAINTEXT && chosen !== CRYPTO_RC4) || !(chosen & this.#provide)) {
          throw new WireError(`MSE: the peer selected a method we did not offer (${chosen})`);
        }
        if (this.#padD > MSE_MAX_PAD) throw new WireError('MSE: PadD longer than 512 bytes');
        this.#buf = b.subarray(6);
        this.#phase = 'padd';
        return {};
      }
      case 'padd': {
        if (b.length < this.#padD) return null;
        this.#decrypt!.update(b.subarray(0, this.#padD));
        const raw = b.subarray(this.#padD);
        this.#buf = Buffer.alloc(0);
        this.#phase = 'done';
        if (this.#select === CRYPTO_PLAINTEXT) {
          return { result: { rest: Buffer.from(raw), cipher: null } };
        }
        const cipher = { encrypt: this.#encrypt!, decrypt: this.#decrypt! };
        return { result: { rest: this.#decrypt!.update(raw), cipher } };
      }
      case 'done':
        return null;
    }
  }
}
