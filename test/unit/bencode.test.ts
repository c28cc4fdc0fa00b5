import { describe, expect, it } from 'vitest';
import { BencodeError } from '../../src/errors.js';
import {
  MAX_BENCODE_DEPTH,
  MAX_BENCODE_VALUES,
  type BDict,
  checkInt,
  decodeStrict,
  encode,
  isDict,
} from '../../src/metainfo/bencode.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function rejects(input: string | Buffer, pattern?: RegExp): BencodeError {
  const buf = typeof input === 'string' ? b(input) : input;
  let caught: unknown;
  try {
    decodeStrict(buf);
  } catch (err) {
    caught = err;
  }
  expect(
    caught,
    `expected ${JSON.stringify(buf.toString('latin1'))} to be rejected`,
  ).toBeInstanceOf(BencodeError);
  if (pattern) expect((caught as Error).message).toMatch(pattern);
  return caught as BencodeError;
}

/** True when the prototype chain of `o` holds no property at all. */
function inheritsNothing(o: object): boolean {
  for (let p = Object.getPrototypeOf(o) as object | null; p; p = Object.getPrototypeOf(p)) {
    if (Reflect.ownKeys(p).length > 0) return false;
  }
  return true;
}

describe('decodeStrict: well-formed input', () => {
  it('decodes every type with dicts that inherit nothing and Buffer strings', () => {
    const { value } = decodeStrict(b('d1:ai-42e1:bl3:xyzi0ee1:cd0:0:ee'));
    expect(isDict(value)).toBe(true);
    const d = value as BDict;
    expect(inheritsNothing(d)).toBe(true);
    expect(d['toString']).toBeUndefined();
    expect(d['constructor']).toBeUndefined();
    expect(d['a']).toBe(-42);
    const list = d['b'] as unknown[];
    expect(Buffer.isBuffer(list[0])).toBe(true);
    expect((list[0] as Buffer).toString()).toBe('xyz');
    expect(list[1]).toBe(0);
    const inner = d['c'] as BDict;
    expect(inheritsNothing(inner)).toBe(true);
    expect((inner[''] as Buffer).length).toBe(0);
  });

  it('accepts the largest safe integers', () => {
    expect(decodeStrict(b(`i${Number.MAX_SAFE_INTEGER}e`)).value).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeStrict(b(`i-${Number.MAX_SAFE_INTEGER}e`)).value).toBe(-Number.MAX_SAFE_INTEGER);
  });

  it('tolerates unsorted dictionary keys', () => {
    const d = decodeStrict(b('d1:bi2e1:ai1ee')).value as BDict;
    expect(d['a']).toBe(1);
    expect(d['b']).toBe(2);
  });

  it('keeps keys such as "constructor" as plain data', () => {
    const d = decodeStrict(b('d11:constructori1e8:toStringi2ee')).value as BDict;
    expect(d['constructor']).toBe(1);
    expect(d['toString']).toBe(2);
    expect(Object.keys(d).sort()).toEqual(['constructor', 'toString']);
  });

  it('reports the exact byte span of a top-level key', () => {
    const input = b('d8:announce3:url4:infod4:name1:x6:lengthi5ee3:zzzi1ee');
    const { span } = decodeStrict(input, { spanOf: 'info' });
    expect(span).toBeDefined();
    expect(input.subarray(span![0], span![1]).toString()).toBe('d4:name1:x6:lengthi5ee');
    // scalars too, and absent keys give no span
    expect(decodeStrict(b('d1:ai17e1:bi0ee'), { spanOf: 'a' }).span).toEqual([4, 8]);
    expect(decodeStrict(b('d1:ai17ee'), { spanOf: 'info' }).span).toBeUndefined();
    // only top-level keys count
    expect(decodeStrict(b('d1:xd4:infoi1eee'), { spanOf: 'info' }).span).toBeUndefined();
  });

  it('encode returns a Buffer that decodes back', () => {
    const out = encode({ b: 1, a: [Buffer.from('hi'), 2] });
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.toString()).toBe('d1:al2:hii2ee1:bi1ee');
    const back = decodeStrict(out).value as BDict;
    expect(back['b']).toBe(1);
  });

  it('accepts nesting up to MAX_BENCODE_DEPTH', () => {
    const n = MAX_BENCODE_DEPTH;
    expect(() => decodeStrict(b('l'.repeat(n) + 'e'.repeat(n)))).not.toThrow();
    rejects('l'.repeat(n + 1) + 'e'.repeat(n + 1), /nesting/);
  });
});

describe('decodeStrict: rejections', () => {
  it('rejects a negative string length quickly (l-3:e)', () => {
    const t0 = performance.now();
    rejects('l-3:e');
    rejects('-3:abc');
    expect(performance.now() - t0).toBeLessThan(100);
  });

  it('rejects non-canonical string lengths', () => {
    rejects('03:abc', /leading zero/);
    rejects('00:', /leading zero/);
    rejects(':abc', /unexpected/);
    rejects('3abc');
    rejects('+3:abc');
  });

  it('rejects a string length past the end, even a huge one, without reading it all', () => {
    rejects('5:abc', /past the end/);
    rejects('99999999999999999999999999999999:x', /past the end/);
    rejects('l4294967296:xe', /past the end/);
  });

  it('rejects non-canonical integers', () => {
    for (const bad of [
      'i-0e',
      'i03e',
      'i00e',
      'i-03e',
      'ie',
      'i-e',
      'i+3e',
      'i1.5e',
      'i 1e',
      'i1 e',
    ]) {
      rejects(bad);
    }
    rejects('i-0e', /negative zero/);
    rejects('i03e', /leading zero/);
    rejects('ie', /no digits/);
  });

  it('rejects integers beyond Number.MAX_SAFE_INTEGER', () => {
    rejects(`i${Number.MAX_SAFE_INTEGER + 1}e`, /too large/);
    rejects(`i-${Number.MAX_SAFE_INTEGER + 1}e`, /too large/);
    rejects('i123456789012345678901234567890e', /too large/);
  });

  it('with largeIntegers, takes integers beyond 2^53 - 1 as bigints, up to 40 digits', () => {
    const large = { largeIntegers: true };
    expect(decodeStrict(b('i18446744073709551616e'), large).value).toBe(18446744073709551616n);
    expect(decodeStrict(b('i-9007199254740993e'), large).value).toBe(-9007199254740993n);
    expect(decodeStrict(b(`i${Number.MAX_SAFE_INTEGER}e`), large).value).toBe(
      Number.MAX_SAFE_INTEGER,
    );
    expect(decodeStrict(b(`d1:ai1${'0'.repeat(39)}e1:bi7ee`), large).value).toEqual({
      a: 10n ** 39n,
      b: 7,
    });
    for (const bad of [`i1${'0'.repeat(40)}e`, 'i0123456789012345678e', 'i-e']) {
      expect(() => decodeStrict(b(bad), large)).toThrow(BencodeError);
    }
    expect(() => checkInt(10n ** 20n, 'x.length')).toThrow(
      'x.length: 100000000000000000000 is too large',
    );
  });

  it('builds at most maxValues values, keys and containers counted', () => {
    expect(decodeStrict(b('li1e0:lee'), { maxValues: 4 }).value).toEqual([1, Buffer.alloc(0), []]);
    expect(() => decodeStrict(b('li1e0:lee'), { maxValues: 3 })).toThrow(/more than 3 values/);
    expect(decodeStrict(b('d1:ai1ee'), { maxValues: 3 }).value).toEqual({ a: 1 });
    expect(() => decodeStrict(b('d1:ai1ee'), { maxValues: 2 })).toThrow(/more than 2 values/);
    // By default: a list of empty strings as long as the cap allows, then one more.
    const list = (n: number): Buffer => Buffer.from(`l${'0:'.repeat(n)}e`, 'latin1');
    expect((decodeStrict(list(MAX_BENCODE_VALUES - 1)).value as Buffer[]).length).toBe(
      MAX_BENCODE_VALUES - 1,
    );
    const err = rejects(list(MAX_BENCODE_VALUES), /more than 2,000,000 values/);
    expect(err.offset).toBe(1 + 2 * (MAX_BENCODE_VALUES - 1));
  });

  it('rejects truncated input', () => {
    for (const bad of ['i12', 'l', 'd', 'li1e', 'd1:a', 'd1:ai1e', '3:ab', '3', 'i', 'i-']) {
      rejects(bad, /truncated|past the end/);
    }
  });

  it('rejects trailing bytes and empty input', () => {
    rejects('i1ei2e', /trailing/);
    rejects('de ', /trailing/);
    rejects('', /empty/);
  });

  it('rejects 10,000 levels of nesting fast, without overflowing the stack', () => {
    const deep = b('l'.repeat(10_000) + 'e'.repeat(10_000));
    const t0 = performance.now();
    const err = rejects(deep, /nesting/);
    expect(err.offset).toBe(MAX_BENCODE_DEPTH);
    rejects(b('d1:a'.repeat(10_000) + 'i1e' + 'e'.repeat(10_000)), /nesting/);
    rejects(b('l'.repeat(1_000_000)), /nesting/);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('rejects duplicate keys, including collisions through the hex fallback', () => {
    rejects('d1:ai1e1:ai2ee', /duplicate/);
    // "\xff" is not UTF-8, so it becomes the hex string "ff", colliding with the key "ff"
    rejects(Buffer.concat([b('d1:'), Buffer.from([0xff]), b('i1e2:ffi2ee')]), /duplicate/);
    // a leading BOM is stripped by the key conversion: "\uFEFFa" collides with "a"
    rejects(
      Buffer.concat([b('d4:'), Buffer.from([0xef, 0xbb, 0xbf]), b('ai1e1:ai2ee')]),
      /duplicate/,
    );
  });

  it('rejects a __proto__ key', () => {
    rejects('d9:__proto__d1:ai1eee', /__proto__/);
    rejects('d1:xd9:__proto__i1eee', /__proto__/);
  });

  it('rejects non-string keys and keys without values', () => {
    rejects('di1ei2ee', /key must be a byte string/);
    rejects('dlei2ee', /key must be a byte string/);
    rejects('d1:ae', /no value/);
  });

  it('rejects garbage bytes', () => {
    rejects('x');
    rejects('lxe');
    rejects(Buffer.from([0]));
  });

  it('gives the offset of the problem', () => {
    expect(rejects('li1ei03ee').offset).toBe(4);
    expect(rejects('li1e').offset).toBe(4);
  });

  it('runs in linear time on large hostile inputs', () => {
    // many tiny strings, many keys, long runs of digits
    const manyKeys = b(
      'd' + Array.from({ length: 100_000 }, (_, i) => `${String(i).length}:${i}i0e`).join('') + 'e',
    );
    const t0 = performance.now();
    expect(() => decodeStrict(manyKeys)).not.toThrow();
    rejects(b('i' + '1'.repeat(5_000_000) + 'e'), /too large/);
    rejects(b('1'.repeat(5_000_000)), /past the end/);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});
