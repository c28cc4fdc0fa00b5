import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BencodeError, TdlError } from '../../src/errors.js';
import { type BValue, decodeStrict, encode } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

// `FUZZ_SEED` / `FUZZ_RUNS` let `npm run fuzz` run longer with another seed.
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;
const params = { seed, numRuns };
/**
 * Upper bound for one call on inputs of a few KiB: catches a parser that blows up (exponential
 * or worse), with room for GC pauses on a busy 2-core machine. How fast it is belongs in bench.
 */
const TIME_BOUND_MS = 5_000;

/** Runs `fn`; passes if it returns or throws a TdlError, fast. Anything else fails the property. */
function returnsOrThrowsTyped(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (err) {
    if (!(err instanceof TdlError)) throw err;
  }
  const elapsed = performance.now() - t0;
  if (elapsed > TIME_BOUND_MS) throw new Error(`took ${elapsed.toFixed(1)} ms`);
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

// Tokens that assemble into near-bencode: mostly valid pieces plus hostile ones.
const token = fc.oneof(
  fc.constantFrom('l', 'd', 'e', 'i', ':', '-', '0', '1', '9', 'i0e', 'i-1e', '0:', '1:a', '2:ab'),
  fc.constantFrom('i-0e', 'i03e', 'ie', 'i+1e', 'i1.5e', '-3:', '03:', '99999999999999999999:'),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => `${n}:`),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => `i${n}e`),
  fc.string({ maxLength: 5 }).map((s) => `${Buffer.byteLength(s)}:${s}`),
);
const tokenStream = fc
  .array(token, { maxLength: 60 })
  .map((ts) => Buffer.from(ts.join(''), 'utf8'));

// Valid bencode values (keys unique by construction of fc.dictionary).
const bvalue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.uint8Array({ maxLength: 20 }).map((u) => Buffer.from(u)),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc
        .string({ maxLength: 6 })
        .filter((k) => k !== '__proto__' && !k.includes('\uFFFD') && !k.startsWith('\uFEFF')),
      tie('v'),
      { maxKeys: 4 },
    ),
  ),
})).v;

function normalize(v: unknown): unknown {
  if (typeof v === 'number') return v;
  if (Buffer.isBuffer(v)) return { bytes: v.toString('hex') };
  if (Array.isArray(v)) return v.map(normalize);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v as object).sort())
    out[k] = normalize((v as Record<string, unknown>)[k]);
  return out;
}

describe('fuzz: strict bencode decoder', () => {
  it('random bytes: returns or throws BencodeError, fast', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (u) => {
        returnsOrThrowsTyped(() => decodeStrict(u));
      }),
      params,
    );
  });

  it('near-bencode token streams: returns or throws BencodeError, fast', () => {
    fc.assert(
      fc.property(tokenStream, fc.constantFrom(undefined, 'info', 'a'), (buf, spanOf) => {
        returnsOrThrowsTyped(() => {
          const r = decodeStrict(buf, spanOf ? { spanOf } : {});
          if (r.span) {
            // the span must itself be one valid value
            decodeStrict(buf.subarray(r.span[0], r.span[1]));
          }
        });
      }),
      params,
    );
  });

  it('valid values round-trip through encode / decodeStrict', () => {
    fc.assert(
      fc.property(bvalue, (v) => {
        const enc = encode(v);
        const back: BValue = decodeStrict(enc).value;
        expect(normalize(back)).toEqual(normalize(v));
        expect(encode(back).equals(enc)).toBe(true);
      }),
      params,
    );
  });

  it('deep nesting: refused past the limit without stack overflow', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20_000 }),
        fc.constantFrom('l', 'd1:a'),
        fc.boolean(),
        (depth, open, closed) => {
          const buf = b(open.repeat(depth) + 'i1e' + (closed ? 'e'.repeat(depth) : ''));
          returnsOrThrowsTyped(() => decodeStrict(buf));
        },
      ),
      { ...params, numRuns: Math.min(numRuns, 300) },
    );
  });

  it('huge and negative string lengths are refused quickly', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: 10n ** 6n, max: 10n ** 40n }),
          fc.bigInt({ min: -(10n ** 40n), max: -1n }),
        ),
        fc.constantFrom('', 'l', 'd1:a', 'd'),
        fc.uint8Array({ maxLength: 64 }),
        (len, prefix, tail) => {
          const buf = Buffer.concat([b(`${prefix}${len}:`), tail]);
          expect(() => decodeStrict(buf)).toThrow(BencodeError);
        },
      ),
      params,
    );
  });

  it('non-canonical integers are refused', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('-0', '+', '0', '00', '-00', ' ', '.'),
        fc.stringMatching(/^[0-9]{0,20}$/),
        (prefix, digits) => {
          const text = prefix + digits;
          const canonical =
            /^(0|-?[1-9][0-9]*)$/.test(text) && Math.abs(Number(text)) <= Number.MAX_SAFE_INTEGER;
          const buf = b(`i${text}e`);
          if (canonical) expect(decodeStrict(buf).value).toBe(Number(text));
          else expect(() => decodeStrict(buf)).toThrow(BencodeError);
        },
      ),
      params,
    );
  });

  it('unsorted keys are accepted, duplicate keys refused', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom('a', 'b', 'c', 'd', 'e', 'ab', ''),
            fc.integer({ min: -5, max: 5 }),
          ),
          {
            maxLength: 8,
          },
        ),
        (entries) => {
          const buf = b('d' + entries.map(([k, v]) => `${k.length}:${k}i${v}e`).join('') + 'e');
          const unique = new Set(entries.map(([k]) => k)).size === entries.length;
          if (unique) {
            const d = decodeStrict(buf).value as Record<string, BValue>;
            for (const [k, v] of entries) expect(d[k]).toBe(v);
          } else {
            expect(() => decodeStrict(buf)).toThrow(/duplicate/);
          }
        },
      ),
      params,
    );
  });

  it('mutated valid torrents: parseTorrent returns or throws a typed error, fast', () => {
    const single = makeTorrent({
      name: 'file.bin',
      pieceLength: 1024,
      files: { data: randomBytesSeeded(5000, 1) },
      announce: 'http://t.example/a',
    }).torrent;
    const multi = makeTorrent({
      name: 'dir',
      pieceLength: 512,
      files: [
        { path: ['a', 'x.txt'], data: randomBytesSeeded(700, 2) },
        { path: ['b'], data: randomBytesSeeded(300, 3) },
      ],
      announceList: [['http://t.example/a'], ['udp://u.example:1']],
    }).torrent;
    expect(parseTorrent(single).name).toBe('file.bin');
    expect(parseTorrent(multi).files.length).toBe(2);

    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        text: fc.constantFrom('e', 'l', 'd', 'i', '-', '0', '9', ':', '__proto__', '..', '/'),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        at: fc.nat(),
        n: fc.integer({ min: 1, max: 8 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(single, multi),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (base, muts) => {
          let buf = Buffer.from(base);
          for (const m of muts) {
            const at = buf.length === 0 ? 0 : m.at % buf.length;
            if (m.kind === 'set') buf[at] = m.byte;
            else if (m.kind === 'insert')
              buf = Buffer.concat([buf.subarray(0, at), b(m.text), buf.subarray(at)]);
            else if (m.kind === 'delete')
              buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.n)]);
            else buf = buf.subarray(0, at);
          }
          returnsOrThrowsTyped(() => parseTorrent(buf));
        },
      ),
      params,
    );
  });
});
