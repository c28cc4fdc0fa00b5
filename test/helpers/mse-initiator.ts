/**
 * An initiating side of the MSE handshake written apart from tdl's own (src/wire/mse-initiator.ts),
 * for the responder's tests: it sends what tdl never does (PadC, chosen PadA bytes, any
 * crypto_provide), and a mistake shared by both sides of tdl's code would not cancel out here.
 */
import { createDiffieHellman } from 'node:crypto';
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MSE_GENERATOR,
  MSE_KEY_BYTES,
  MSE_PRIME,
  pad,
  sha1,
  xor,
} from '../../src/wire/mse.js';
import { Rc4 } from '../../src/wire/rc4.js';

/**
 * The initiating side: step 1, then step 3 once step 2 is in. Offers
 * `provide` and sends `ia` as initial payload.
 */
export class MseInitiator {
  readonly #dh = createDiffieHellman(MSE_PRIME, MSE_GENERATOR);
  #buf: Buffer = Buffer.alloc(0);
  #secret: Buffer | null = null;
  #encrypt: Rc4 | null = null;
  #decrypt: Rc4 | null = null;
  #sent3 = false;

  constructor(
    private readonly skey: Buffer,
    private readonly o: { provide?: number; ia?: Buffer; padA?: Buffer; padC?: Buffer } = {},
  ) {
    this.#dh.generateKeys();
  }

  /** Step 1. */
  start(): Buffer {
    return Buffer.concat([
      pad(this.#dh.getPublicKey(), MSE_KEY_BYTES),
      this.o.padA ?? Buffer.alloc(0),
    ]);
  }

  /**
   * Takes B's bytes; returns step 3 once Yb is in, and `select` once step 4 is in (the bytes
   * after it in `rest`). PadB is found by the VC it precedes, as the spec describes.
   */
  push(data: Buffer): { send: Buffer; select: number | null; rest: Buffer } {
    this.#buf = Buffer.concat([this.#buf, data]);
    let send = Buffer.alloc(0);
    if (!this.#sent3) {
      if (this.#buf.length < MSE_KEY_BYTES) return { send, select: null, rest: Buffer.alloc(0) };
      const s = pad(this.#dh.computeSecret(this.#buf.subarray(0, MSE_KEY_BYTES)), MSE_KEY_BYTES);
      this.#secret = s;
      this.#buf = this.#buf.subarray(MSE_KEY_BYTES);
      this.#encrypt = new Rc4(sha1('keyA', s, this.skey));
      const padC = this.o.padC ?? Buffer.alloc(0);
      const ia = this.o.ia ?? Buffer.alloc(0);
      const head = Buffer.alloc(14 + padC.length + 2);
      head.writeUInt32BE(this.o.provide ?? CRYPTO_PLAINTEXT | CRYPTO_RC4, 8);
      head.writeUInt16BE(padC.length, 12);
      padC.copy(head, 14);
      head.writeUInt16BE(ia.length, 14 + padC.length);
      send = Buffer.concat([
        sha1('req1', s),
        xor(sha1('req2', this.skey), sha1('req3', s)),
        this.#encrypt.update(head),
        this.#encrypt.update(ia),
      ]);
      this.#sent3 = true;
    }
    // Step 4 starts with VC encrypted: look for it after PadB (decrypted afresh on each call).
    const keyB = sha1('keyB', this.#secret!, this.skey);
    const at = this.#buf.indexOf(new Rc4(keyB).update(Buffer.alloc(8)));
    const none = { send, select: null, rest: Buffer.alloc(0) };
    if (at < 0 || this.#buf.length < at + 14) return none;
    const d = new Rc4(keyB);
    d.update(this.#buf.subarray(at, at + 8));
    const tail = d.update(this.#buf.subarray(at + 8, at + 14));
    const padD = tail.readUInt16BE(4);
    if (this.#buf.length < at + 14 + padD) return none;
    d.update(this.#buf.subarray(at + 14, at + 14 + padD));
    this.#decrypt = d;
    return {
      send,
      select: tail.readUInt32BE(0),
      rest: Buffer.from(this.#buf.subarray(at + 14 + padD)),
    };
  }

  /**
   * Once step 4 is in, the RC4 streams where the handshake left them: to encrypt what we send
   * and decrypt what we receive (`rest` included) when RC4 was selected.
   */
  streams(): { encrypt: Rc4; decrypt: Rc4 } {
    if (!this.#encrypt || !this.#decrypt) throw new Error('MSE handshake not complete');
    return { encrypt: this.#encrypt, decrypt: this.#decrypt };
  }
}
