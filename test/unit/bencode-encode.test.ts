import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import bencode from 'bencode';
import { decodeStrict, encode } from '../../src/metainfo/bencode.js';
import { Bencoded, encodeCanonical } from '../../src/metainfo/bencode-encode.js';

/** What the `bencode` package writes (the reference; tdl no longer loads it). */
const reference = (v: unknown): Buffer => Buffer.from(bencode.encode(v));

// `FUZZ_SEED` / `FUZZ_RUNS` as in test/fuzz/.
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 300;

describe('encodeCanonical', () => {
  it('writes what the bencode package writes', () => {
    expect(encodeCanonical({ b: 1, a: [0, -12, 'x', Buffer.from([0, 255])], c: {} })).toEqual(
      Buffer.from('d1:ali0ei-12e1:x2:\x00\xffe1:bi1e1:cdee', 'latin1'),
    );
    expect(encodeCanonical('é')).toEqual(Buffer.from('2:é'));
    expect(encodeCanonical([])).toEqual(Buffer.from('le'));
    expect(encodeCanonical(Number.MAX_SAFE_INTEGER)).toEqual(Buffer.from('i9007199254740991e'));
  });

  it('leaves out absent entries and refuses values bencode cannot hold', () => {
    expect(encodeCanonical({ a: undefined, b: null, c: [undefined, 1] })).toEqual(
      Buffer.from('d1:cli1eee'),
    );
    for (const bad of [1.5, NaN, 2 ** 60, true, new Map(), Symbol('x'), () => 1]) {
      expect(() => encodeCanonical(bad)).toThrow(TypeError);
    }
  });

  it('sorts keys by their UTF-8 bytes, even when UTF-16 order differs', () => {
    // U+FF5E sorts after U+1F600 in UTF-16 (0xFF5E > 0xD83D) but before it in UTF-8.
    const out = encodeCanonical({ '\u{1F600}': 1, '\uFF5E': 2, b: 3, a: 4 });
    expect(out).toEqual(Buffer.from('d1:ai4e1:bi3e3:\uFF5Ei2e4:\u{1F600}i1ee'));
  });

  it('matches the bencode package on random values with ASCII keys', () => {
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.maxSafeInteger(),
        fc.string({ unit: 'binary', maxLength: 8 }),
        fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), tie('value'), {
          maxKeys: 4,
        }),
      ),
    }));
    fc.assert(
      fc.property(value, (v) => {
        expect(encodeCanonical(v)).toEqual(reference(v));
      }),
      { seed, numRuns },
    );
  });
});

describe('encode (bencode.ts)', () => {
  it('is encodeCanonical, and takes dictionaries without a prototype and decoded ones', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 'x' });
    expect(encode(bare)).toEqual(Buffer.from('d1:a1:x1:bi1ee'));
    const decoded = decodeStrict(Buffer.from('d1:ad1:xi1ee1:bl1:yee')).value;
    expect(encode(decoded)).toEqual(Buffer.from('d1:ad1:xi1ee1:bl1:yee'));
    expect(encode({ m: bare, v: Buffer.from('TD01') })).toEqual(reference({ m: bare, v: 'TD01' }));
    for (const bad of [new Date(0), new Set([1]), true])
      expect(() => encode(bad)).toThrow(TypeError);
  });
});

describe('Bencoded', () => {
  it('is written as it is', () => {
    const raw = new Bencoded(Buffer.from('li1ee'));
    expect(encodeCanonical({ b: raw, a: [raw] })).toEqual(Buffer.from('d1:alli1eee1:bli1eee'));
  });
});
