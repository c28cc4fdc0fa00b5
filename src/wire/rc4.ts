/**
 * RC4, the stream cipher of MSE (src/wire/mse.ts). OpenSSL 3 has dropped it from Node's default
 * provider, so it is done here, two ways that give the same key stream:
 *
 * - a JavaScript loop over the 256-byte state, for short messages;
 * - a WebAssembly function for chunks of 256 bytes and more (the bulk of an encrypted
 *   download): the state and up to 64 KiB of data are copied into its memory, the key stream
 *   is XORed in four bytes at a time, and both are copied back. About three times the
 *   JavaScript loop's rate (docs/DESIGN.md, "Incoming MSE handshakes").
 *
 * The WebAssembly module is 439 bytes, assembled below from its instructions so that
 * what runs can be read here; where WebAssembly is missing (`node --jitless`) the JavaScript
 * loop does all the work.
 */

/**
 * Key stream from the state (s, i, j) XORed into `data`, written to `out` (as long as `data`; it
 * may be `data` itself); returns (i << 8) | j after.
 */
export type Rc4Kernel = (
  s: Uint8Array,
  i: number,
  j: number,
  data: Uint8Array,
  out: Uint8Array,
) => number;

/** Chunks shorter than this stay in JavaScript: copying the state in and out costs more. */
export const RC4_WASM_MIN = 256;
/** Data the WebAssembly memory holds at once (one page, after the state). */
const WASM_SLICE = 65536;

export const jsKernel: Rc4Kernel = (s, i, j, data, out) => {
  const n = data.length;
  // s[i] and s[j] read once each (a third faster than reading them again after the swap).
  for (let k = 0; k < n; k++) {
    i = (i + 1) & 0xff;
    const si = s[i]!;
    j = (j + si) & 0xff;
    const sj = s[j]!;
    s[i] = sj;
    s[j] = si;
    out[k] = data[k]! ^ s[(si + sj) & 0xff]!;
  }
  return (i << 8) | j;
};

// --- The WebAssembly module ------------------------------------------------------------------

const op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  void: 0x40,
  i32: 0x7f,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  load: 0x28,
  load8: 0x2d,
  store: 0x36,
  store8: 0x3a,
  const: 0x41,
  geU: 0x4f,
  add: 0x6a,
  and: 0x71,
  or: 0x72,
  xor: 0x73,
  shl: 0x74,
} as const;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];

/**
 * rc4(n, i, j) -> (i << 8) | j, with S at memory[0..255] and the data at memory[256..256+n).
 * Locals after the three parameters: k (the data offset), si, sj, end4 (n rounded down to 4).
 */
function rc4Module(): Uint8Array {
  const [N, I, J, K, SI, SJ, END4] = [0, 1, 2, 3, 4, 5, 6];
  const c255 = [op.const, 0xff, 0x01]; // i32.const 255 (signed LEB128)
  const data = [0x80, 0x02]; // memarg offset 256: where the data starts
  // One byte of key stream left on the stack: i += 1; j += S[i]; swap S[i], S[j]; S[S[i] + S[j]].
  const next = [
    ...[op.get, I, op.const, 1, op.add, ...c255, op.and, op.tee, I, op.load8, 0, 0, op.set, SI],
    ...[op.get, J, op.get, SI, op.add, ...c255, op.and, op.tee, J, op.load8, 0, 0, op.set, SJ],
    ...[op.get, I, op.get, SJ, op.store8, 0, 0, op.get, J, op.get, SI, op.store8, 0, 0],
    ...[op.get, SI, op.get, SJ, op.add, ...c255, op.and, op.load8, 0, 0],
  ];
  const shifted = (bits: number) => [...next, op.const, bits, op.shl, op.or];
  const code = [
    ...[op.get, N, op.const, 0x7c, op.and, op.set, END4], // end4 = n & ~3 (-4 in LEB128)
    // Four bytes at a time: data[k..k+4) ^= the next four bytes of key stream, little-endian.
    ...[op.block, op.void, op.loop, op.void],
    ...[op.get, K, op.get, END4, op.geU, op.brIf, 1],
    ...[op.get, K, op.get, K, op.load, 0, ...data],
    ...[...next, ...shifted(8), ...shifted(16), ...shifted(24)],
    ...[op.xor, op.store, 0, ...data],
    ...[op.get, K, op.const, 4, op.add, op.set, K, op.br, 0, op.end, op.end],
    // The last zero to three bytes one at a time.
    ...[op.block, op.void, op.loop, op.void],
    ...[op.get, K, op.get, N, op.geU, op.brIf, 1],
    ...[op.get, K, op.get, K, op.load8, 0, ...data, ...next, op.xor, op.store8, 0, ...data],
    ...[op.get, K, op.const, 1, op.add, op.set, K, op.br, 0, op.end, op.end],
    ...[op.get, I, op.const, 8, op.shl, op.get, J, op.or, op.end],
  ];
  const body = [1, 4, op.i32, ...code]; // one run of four i32 locals
  const name = (s: string) => [s.length, ...Buffer.from(s)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [1, 0x60, 3, op.i32, op.i32, op.i32, 1, op.i32]), // type (i32 i32 i32) -> i32
    ...section(3, [1, 0]), // one function of that type
    ...section(5, [1, 0, 2]), // one memory of two pages (never grown: its views stay valid)
    ...section(7, [2, ...name('rc4'), 0x00, 0, ...name('mem'), 0x02, 0]), // exports
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

let wasm: Rc4Kernel | null | undefined;

/** The part of the WebAssembly API used here (the compiler's Node types do not declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

/** The WebAssembly kernel, built on first use; null where WebAssembly is not available. */
export function wasmKernel(): Rc4Kernel | null {
  if (wasm !== undefined) return wasm;
  wasm = null;
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (!api) return wasm;
  try {
    const { exports } = new api.Instance(new api.Module(rc4Module()));
    const run = exports['rc4'] as (n: number, i: number, j: number) => number;
    const mem = new Uint8Array((exports['mem'] as { buffer: ArrayBuffer }).buffer);
    wasm = (s, i, j, data, out) => {
      mem.set(s, 0);
      for (let at = 0; at < data.length; at += WASM_SLICE) {
        const part = data.subarray(at, at + WASM_SLICE);
        mem.set(part, 256);
        const ij = run(part.length, i, j);
        i = ij >>> 8;
        j = ij & 0xff;
        out.set(mem.subarray(256, 256 + part.length), at);
      }
      s.set(mem.subarray(0, 256));
      return (i << 8) | j;
    };
  } catch {
    wasm = null;
  }
  return wasm;
}

/** RC4; MSE discards the first 1024 bytes of its key stream. */
export class Rc4 {
  readonly #s = new Uint8Array(256);
  #i = 0;
  #j = 0;

  constructor(key: Buffer, discard = 1024) {
    const s = this.#s;
    for (let i = 0; i < 256; i++) s[i] = i;
    for (let i = 0, j = 0; i < 256; i++) {
      j = (j + s[i]! + key[i % key.length]!) & 0xff;
      const t = s[i]!;
      s[i] = s[j]!;
      s[j] = t;
    }
    this.updateInPlace(Buffer.alloc(discard));
  }

  /** XORs the key stream into a copy of `data` (encrypts or decrypts). */
  update(data: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(data.length);
    this.#run(data, out);
    return out;
  }

  /** XORs the key stream into `data` itself. */
  updateInPlace(data: Uint8Array): void {
    this.#run(data, data);
  }

  #run(data: Uint8Array, out: Uint8Array): void {
    const kernel = (data.length >= RC4_WASM_MIN && wasmKernel()) || jsKernel;
    const ij = kernel(this.#s, this.#i, this.#j, data, out);
    this.#i = ij >>> 8;
    this.#j = ij & 0xff;
  }
}
