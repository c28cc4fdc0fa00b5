import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TdlError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import {
  MAX_PEERS_PER_REPLY,
  MAX_TRACKER_BODY_BYTES,
  parseHttpResponse,
} from '../../src/tracker/http.js';
import type { AnnounceResponse } from '../../src/tracker/types.js';
import { decodeUdpReply } from '../../src/tracker/udp-codec.js';

const seed = Number(process.env['FUZZ_SEED'] ?? 42);
const numRuns = Number(process.env['FUZZ_RUNS'] ?? 3000);
const params = { seed, numRuns };
/**
 * A single parse of a small input must never take longer than this: catches a blow-up, with
 * room for GC pauses on a busy machine (speed belongs in `npm run bench`).
 */
const SLOW_MS = 5_000;

function timed<T>(fn: () => T): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    const ms = performance.now() - t0;
    if (ms > SLOW_MS) throw new Error(`parser took ${ms.toFixed(1)} ms`);
  }
}

/** Runs `fn`; passes if it returns or throws a TdlError. Returns the value or undefined. */
function returnsOrTdlError<T>(fn: () => T): T | undefined {
  try {
    return timed(fn);
  } catch (err) {
    if (err instanceof TdlError) return undefined;
    throw err;
  }
}

function checkResponse(r: AnnounceResponse | undefined): void {
  if (!r) return;
  expect(r.peers.length).toBeLessThanOrEqual(MAX_PEERS_PER_REPLY);
  for (const p of r.peers) {
    expect(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535).toBe(true);
    expect(typeof p.host).toBe('string');
  }
  expect(Number.isInteger(r.interval) && r.interval >= 1 && r.interval <= 86400).toBe(true);
  if (r.minInterval !== undefined) expect(r.minInterval).toBeLessThanOrEqual(r.interval);
}

// Arbitrary bencode-able values, biased towards tracker-reply shapes.
const bvalue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -1e6, max: 1e12 }),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const peerDict = fc.record(
  {
    ip: fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.string({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
    ),
    port: fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.string()),
    'peer id': fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
  },
  { requiredKeys: [] },
);

const replyDict = fc.record(
  {
    interval: fc.oneof(fc.integer({ min: -100, max: 1e9 }), bvalue),
    'min interval': fc.oneof(fc.integer({ min: -100, max: 1e9 }), bvalue),
    complete: fc.integer({ min: -5, max: 1e6 }),
    incomplete: fc.integer({ min: -5, max: 1e6 }),
    'failure reason': fc.oneof(fc.string(), bvalue),
    'warning message': fc.oneof(fc.string(), bvalue),
    peers: fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.array(fc.oneof(peerDict, bvalue), { maxLength: 10 }),
      bvalue,
    ),
    peers6: fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      bvalue,
    ),
  },
  { requiredKeys: [] },
);

/** Byte-level mutations of a valid input. */
const mutated = (base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> =>
  fc
    .tuple(
      base,
      fc.array(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })),
        { maxLength: 6 },
      ),
    )
    .map(([b, muts]) => {
      let buf = Buffer.from(b);
      for (const [pos, kind, byte] of muts) {
        const i = buf.length === 0 ? 0 : pos % buf.length;
        if (kind === 0 && buf.length > 0) buf[i] = byte;
        else if (kind === 1) buf = buf.subarray(0, i);
        else if (kind === 2)
          buf = Buffer.concat([buf.subarray(0, i), Buffer.from([byte]), buf.subarray(i)]);
        else buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + 1)]);
      }
      return buf;
    });

describe(`tracker parsers under fuzzing (seed ${seed}, ${numRuns} runs)`, () => {
  it('parseHttpResponse: random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
        checkResponse(returnsOrTdlError(() => parseHttpResponse(Buffer.from(b))));
      }),
      params,
    );
  });

  it('parseHttpResponse: structured replies with wrong types', () => {
    fc.assert(
      fc.property(replyDict, (d) => {
        checkResponse(returnsOrTdlError(() => parseHttpResponse(encode(d))));
      }),
      params,
    );
  });

  it('parseHttpResponse: mutated valid replies', () => {
    fc.assert(
      fc.property(mutated(replyDict.map((d) => encode(d))), (b) => {
        checkResponse(returnsOrTdlError(() => parseHttpResponse(b)));
      }),
      params,
    );
  });

  it('decodeUdpReply: random and mutated packets, both families', () => {
    const header = fc
      .tuple(
        fc.integer({ min: 0, max: 4 }),
        fc.nat(),
        fc.uint8Array({ minLength: 0, maxLength: 400 }),
      )
      .map(([action, tid, rest]) => {
        const h = Buffer.alloc(8);
        h.writeUInt32BE(action, 0);
        h.writeUInt32BE(tid >>> 0, 4);
        return Buffer.concat([h, rest]);
      });
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 600 }), header, mutated(header)),
        fc.constantFrom(4 as const, 6 as const),
        (b, family) => {
          const r = returnsOrTdlError(() => decodeUdpReply(b, family));
          if (r && r.action === 'announce') {
            expect(r.peers.length).toBeLessThanOrEqual(MAX_PEERS_PER_REPLY);
            for (const p of r.peers) expect(p.port).toBeGreaterThan(0);
          }
        },
      ),
      params,
    );
  });

  it('a body at the size cap full of peers parses quickly', () => {
    const peers = Buffer.alloc(MAX_TRACKER_BODY_BYTES - 64 - ((MAX_TRACKER_BODY_BYTES - 64) % 6));
    for (let i = 0; i < peers.length; i += 6) {
      peers.writeUInt32BE(0x0a000000 + i, i);
      peers.writeUInt16BE(1 + (i % 60000), i + 4);
    }
    const body = encode({ interval: 60, peers, peers6: peers.subarray(0, 180_000) });
    const t0 = performance.now();
    const r = parseHttpResponse(body);
    // Linear work: a quadratic parse of 1 MiB would take hours, not seconds.
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(r.peers).toHaveLength(MAX_PEERS_PER_REPLY);
  });
});
