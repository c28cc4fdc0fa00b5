import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { MetadataFetch } from '../../src/swarm/metadata-fetch.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import {
  type ExtendedHandshake,
  MAX_CLIENT_NAME_CHARS,
  MAX_EXTENSIONS,
  MAX_REQQ,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
} from '../../src/wire/extension.js';
import {
  MAX_METADATA_PIECES,
  METADATA_PIECE_SIZE,
  type UtMetadataMessage,
  answerMetadataRequest,
  decodeUtMetadata,
  encodeUtMetadata,
} from '../../src/wire/ut-metadata.js';
import { MAX_PEX_PEERS, type PexMessage, decodePex, encodePex } from '../../src/wire/ut-pex.js';

// `FUZZ_SEED` / `FUZZ_RUNS` let `npm run fuzz` run longer with another seed.
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;
const params = { seed, numRuns };
// Generous: catches a parser gone quadratic or hung, not a GC pause on a busy machine.
const SLOW_MS = 2000;

/** fn's value, or undefined when it threw a WireError (anything else fails the test). */
function orWireError<T>(fn: () => T): T | undefined {
  const t0 = performance.now();
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return undefined;
  } finally {
    const ms = performance.now() - t0;
    if (ms > SLOW_MS) throw new Error(`decoder took ${ms.toFixed(1)} ms`);
  }
}

// Arbitrary bencode-able values, biased towards the keys these decoders read.
const keys = fc.constantFrom(
  'm',
  'v',
  'p',
  'reqq',
  'metadata_size',
  'yourip',
  'ut_metadata',
  'ut_pex',
  'msg_type',
  'piece',
  'total_size',
  'added',
  'added.f',
  'added6',
  'added6.f',
  'dropped',
  'dropped6',
  'x',
);
const bvalue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -5, max: 70000 }),
    fc.constantFrom(0, 1, 2, 3, 255, 256, 2 ** 53 - 1, -(2 ** 53 - 1)),
    fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(keys, fc.string({ maxLength: 6 })), tie('value'), { maxKeys: 6 }),
  ),
})).value;
const bdict = fc.dictionary(fc.oneof(keys, fc.string({ maxLength: 6 })), bvalue, { maxKeys: 8 });

/** Bytes: random, bencoded random dictionaries, or those with random bytes flipped or cut. */
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  bdict.map((d) => encode(d)),
  fc
    .tuple(bdict, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }), fc.nat())
    .map(([d, flips, cut]) => {
      const b = Buffer.from(encode(d));
      for (const [pos, v] of flips) b[pos % b.length] = v;
      return b.subarray(0, cut % (b.length + 1));
    }),
);

function checkPeers(list: PeerAddress[]): void {
  expect(list.length).toBeLessThanOrEqual(2 * MAX_PEX_PEERS);
  for (const p of list) {
    expect(p.port >= 1 && p.port <= 65535).toBe(true);
    expect(p.host === '0.0.0.0' || p.host === '::').toBe(false);
  }
}

describe('fuzz: extended handshake', () => {
  it('any payload: a capped handshake or a WireError', () => {
    fc.assert(
      fc.property(payload, (b) => {
        const h = orWireError(() => decodeExtendedHandshake(b));
        if (!h) return;
        expect(h.m.size).toBeLessThanOrEqual(MAX_EXTENSIONS);
        for (const id of h.m.values()) expect(id >= 0 && id <= 255).toBe(true);
        if (h.v !== undefined) expect([...h.v].length).toBeLessThanOrEqual(MAX_CLIENT_NAME_CHARS);
        if (h.v !== undefined) expect(h.v).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        if (h.p !== undefined) expect(h.p >= 1 && h.p <= 65535).toBe(true);
        if (h.reqq !== undefined) expect(h.reqq >= 1 && h.reqq <= MAX_REQQ).toBe(true);
        if (h.yourip !== undefined) expect([4, 16]).toContain(h.yourip.length);
      }),
      params,
    );
  });

  it('valid handshakes round-trip', () => {
    const handshake: fc.Arbitrary<ExtendedHandshake> = fc.record(
      {
        m: fc
          .dictionary(
            fc.stringMatching(/^[a-z_]{1,20}$/).filter((k) => k !== '__proto__'),
            fc.integer({ min: 0, max: 255 }),
            {
              maxKeys: 10,
            },
          )
          .map((o) => new Map(Object.entries(o))),
        v: fc.stringMatching(/^[ -~]{0,30}$/),
        p: fc.integer({ min: 1, max: 65535 }),
        reqq: fc.integer({ min: 1, max: MAX_REQQ }),
        metadataSize: fc.nat(),
        yourip: fc
          .oneof(
            fc.uint8Array({ minLength: 4, maxLength: 4 }),
            fc.uint8Array({ minLength: 16, maxLength: 16 }),
          )
          .map((u) => Buffer.from(u)),
      },
      { requiredKeys: ['m'] },
    );
    fc.assert(
      fc.property(handshake, (h) => {
        expect(decodeExtendedHandshake(encodeExtendedHandshake(h))).toEqual(h);
      }),
      params,
    );
  });
});

const utMessage: fc.Arbitrary<UtMetadataMessage> = fc.oneof(
  fc
    .nat({ max: MAX_METADATA_PIECES - 1 })
    .map((piece): UtMetadataMessage => ({ type: 'request', piece })),
  fc
    .nat({ max: MAX_METADATA_PIECES - 1 })
    .map((piece): UtMetadataMessage => ({ type: 'reject', piece })),
  fc
    .tuple(
      fc.nat({ max: MAX_METADATA_PIECES - 1 }),
      fc.nat({ max: 2 ** 40 }),
      fc.uint8Array({ maxLength: 300 }),
    )
    .map(([piece, totalSize, d]): UtMetadataMessage => ({
      type: 'data',
      piece,
      totalSize,
      data: Buffer.from(d),
    })),
  fc
    .integer({ min: 3, max: 1000 })
    .map((msgType): UtMetadataMessage => ({ type: 'unknown', msgType })),
);

describe('fuzz: ut_metadata', () => {
  it('any payload: a message within limits or a WireError', () => {
    fc.assert(
      fc.property(payload, (b) => {
        const m = orWireError(() => decodeUtMetadata(b));
        if (!m || m.type === 'unknown') return;
        expect(m.piece >= 0 && m.piece < MAX_METADATA_PIECES).toBe(true);
        if (m.type === 'data') expect(m.data.length).toBeLessThanOrEqual(METADATA_PIECE_SIZE);
      }),
      params,
    );
  });

  it('valid messages round-trip; every cut before the data is a WireError', () => {
    fc.assert(
      fc.property(utMessage, fc.nat(), (m, cut) => {
        const b = encodeUtMetadata(m);
        expect(decodeUtMetadata(b)).toEqual(m);
        const dataLength = m.type === 'data' ? m.data.length : 0;
        const at = cut % (b.length - dataLength);
        expect(() => decodeUtMetadata(b.subarray(0, at))).toThrow(WireError);
      }),
      params,
    );
  });

  it('a fetch fed hostile messages never breaks, and an honest peer then completes it', () => {
    const info = encode({
      name: 'x',
      'piece length': 16,
      pieces: Buffer.alloc(20 * 2000, 7),
      length: 32000,
    });
    const hash = createHash('sha1').update(info).digest();
    const hostile = fc.array(
      fc.tuple(fc.constantFrom('h1', 'h2', 'h3'), fc.oneof(utMessage, fc.constant(null))),
      { maxLength: 30 },
    );
    fc.assert(
      fc.property(
        hostile,
        fc.constantFrom(info.length, info.length + 1, 1, 16384),
        (msgs, size) => {
          let now = 0;
          const f = new MetadataFetch(hash, { now: () => now });
          for (const id of ['h1', 'h2', 'h3']) f.addPeer(id, size);
          for (const [id, m] of msgs) {
            const asked = f.requestsFor(id);
            expect(asked.length).toBeLessThanOrEqual(2);
            const answer: UtMetadataMessage | null =
              m ?? (asked.length > 0 ? answerMetadataRequest(info, asked[0]!) : null);
            if (answer) f.onMessage(id, answer);
            now += 1000;
          }
          // The hostile peers go silent; an honest one joins.
          f.addPeer('good', info.length);
          for (let round = 0; round < 200 && !f.info; round++) {
            for (const piece of f.requestsFor('good')) {
              f.onMessage(
                'good',
                decodeUtMetadata(encodeUtMetadata(answerMetadataRequest(info, piece))),
              );
            }
            for (const id of ['h1', 'h2', 'h3']) f.requestsFor(id);
            now += 5000;
          }
          expect(f.info?.equals(info)).toBe(true);
        },
      ),
      { seed, numRuns: Math.max(50, Math.floor(numRuns / 10)) },
    );
  });
});

describe('fuzz: ut_pex', () => {
  it('any payload: at most 50 usable peers per list, or a WireError', () => {
    fc.assert(
      fc.property(payload, (b) => {
        const m = orWireError(() => decodePex(b));
        if (!m) return;
        checkPeers(m.added);
        checkPeers(m.dropped);
        expect(m.addedFlags).toHaveLength(m.added.length);
      }),
      params,
    );
  });

  it('compact lists of any length: whole entries decode, others are a WireError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 700 }),
        fc.uint8Array({ maxLength: 400 }),
        fc.uint8Array({ maxLength: 60 }),
        (a, a6, f) => {
          const b = encode({
            added: Buffer.from(a),
            added6: Buffer.from(a6),
            'added.f': Buffer.from(f),
          });
          const m = orWireError(() => decodePex(b));
          expect(m === undefined).toBe(a.length % 6 !== 0 || a6.length % 18 !== 0);
          if (m) {
            checkPeers(m.added);
            expect(m.addedFlags).toHaveLength(m.added.length);
          }
        },
      ),
      params,
    );
  });

  it('messages round-trip (usable, distinct peers, at most 50 per list)', () => {
    const v4 = fc
      .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 65535 }))
      .filter(([a]) => !a.every((x) => x === 0))
      .map(([a, port]): PeerAddress => ({ host: [...a].join('.'), port }));
    const msg = fc
      .tuple(
        fc.uniqueArray(v4, { selector: (p) => `${p.host}|${p.port}`, maxLength: 60 }),
        fc.uniqueArray(v4, { selector: (p) => `${p.host}|${p.port}`, maxLength: 60 }),
      )
      .map(([added, dropped]): PexMessage => ({
        added,
        addedFlags: added.map((_, i) => i & 0x1f),
        dropped,
      }));
    fc.assert(
      fc.property(msg, (m) => {
        expect(decodePex(encodePex(m))).toEqual({
          added: m.added.slice(0, MAX_PEX_PEERS),
          addedFlags: m.addedFlags.slice(0, MAX_PEX_PEERS),
          dropped: m.dropped.slice(0, MAX_PEX_PEERS),
        });
      }),
      params,
    );
  });
});
