import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RC4_WASM_MIN, Rc4, jsKernel, wasmKernel, type Rc4Kernel } from '../../src/wire/rc4.js';

/** RC4's initial state for a key (the key schedule), as the kernels take it. */
function schedule(key: Buffer): Uint8Array {
  const s = new Uint8Array(256);
  for (let i = 0; i < 256; i++) s[i] = i;
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  return s;
}

/** The key stream a kernel gives for `key`, taken in chunks of the given lengths. */
function keyStream(kernel: Rc4Kernel, key: Buffer, chunks: number[]): Buffer {
  const s = schedule(key);
  let ij = 0;
  const parts = chunks.map((n) => {
    const part = Buffer.alloc(n);
    ij = kernel(s, ij >>> 8, ij & 0xff, part, part);
    return part;
  });
  return Buffer.concat(parts);
}

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

const kernels: [string, Rc4Kernel][] = [
  ['JavaScript', jsKernel],
  ['WebAssembly', wasmKernel()!],
];

describe('RC4 kernels', () => {
  it('WebAssembly is available here (the bulk path under test)', () => {
    expect(wasmKernel()).not.toBeNull();
  });

  for (const [name, kernel] of kernels) {
    it(`${name}: RFC 6229's 40-bit key at offsets 0 and 256`, () => {
      const ks = keyStream(kernel, Buffer.from([1, 2, 3, 4, 5]), [272]);
      expect(ks.subarray(0, 16).toString('hex')).toBe('b2396305f03dc027ccc3524a0a1118a8');
      expect(ks.subarray(256, 272).toString('hex')).toBe('1cfcf62b03eddb641d77dfcf7f8d8c93');
    });

    it(`${name}: 196,611 bytes of key stream as OpenSSL's RC4 gives them, in one call or many`, () => {
      // SHA-1 of the key stream from OpenSSL's RC4 (`node --openssl-legacy-provider`) for this key (3 × 64 KiB + 3 bytes,
      // so the WebAssembly side crosses its 64 KiB slices and ends off a four-byte word).
      const key = Buffer.from('an RC4 test key!');
      const expected = '45fbb113dd5e7c512ed1f5537f41bc657a3cc152';
      const total = 3 * 65536 + 3;
      expect(sha1(keyStream(kernel, key, [total]))).toBe(expected);
      const chunks = [1, 255, 256, 257, 65535, 65536];
      chunks.push(total - chunks.reduce((a, b) => a + b));
      expect(sha1(keyStream(kernel, key, chunks))).toBe(expected);
    });
  }

  it('the two kernels agree on any key and any chunking', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 6 }),
        (key, chunks) => {
          const k = Buffer.from(key);
          const a = keyStream(wasmKernel()!, k, chunks);
          expect(a.equals(keyStream(jsKernel, k, chunks))).toBe(true);
        },
      ),
      { numRuns: 40, seed: 0x7c4 },
    );
  });
});

describe('Rc4', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it('gives the same bytes whichever kernel each call takes', () => {
    const key = Buffer.from('a key');
    const data = Buffer.alloc(200_000, 0x5a);
    const whole = new Rc4(key).update(data);
    const c = new Rc4(key);
    const sizes = [3, RC4_WASM_MIN - 1, RC4_WASM_MIN, 1, 70_000, 17, 100_000];
    let at = 0;
    const parts: Buffer[] = sizes.map((n) => {
      const part = Buffer.from(data.subarray(at, (at += n)));
      c.updateInPlace(part);
      return part;
    });
    parts.push(c.update(data.subarray(at)));
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
    expect(new Rc4(key).update(whole).equals(data)).toBe(true);
  });

  it('works with no WebAssembly at all (node --jitless)', async () => {
    vi.stubGlobal('WebAssembly', undefined);
    vi.resetModules();
    const bare = await import('../../src/wire/rc4.js');
    expect(bare.wasmKernel()).toBeNull();
    const key = Buffer.from('a key');
    const data = Buffer.alloc(100_000, 7);
    expect(new bare.Rc4(key).update(data).equals(new Rc4(key).update(data))).toBe(true);
  });
});
