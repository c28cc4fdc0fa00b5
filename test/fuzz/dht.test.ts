import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCache } from '../../src/dht/cache.js';
import {
  decodeKrpc,
  encodeQuery,
  encodeResponse,
  MAX_NODES_PER_REPLY,
  MAX_VALUES_PER_REPLY,
} from '../../src/dht/krpc.js';
import type { KrpcMessage } from '../../src/dht/krpc.js';
import { TdlError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';

const seed = Number(process.env['FUZZ_SEED'] ?? 42);
const numRuns = Number(process.env['FUZZ_RUNS'] ?? 3000);
const params = { seed, numRuns };
/** A hang or a blow-up, not a slow machine: a busy 2-core box can pause for 100 ms. */
const SLOW_MS = 2000;

function decodeOrTdlError(b: Uint8Array): KrpcMessage | undefined {
  const t0 = performance.now();
  try {
    return decodeKrpc(b);
  } catch (err) {
    if (err instanceof TdlError) return undefined;
    throw err;
  } finally {
    const ms = performance.now() - t0;
    if (ms > SLOW_MS) throw new Error(`decoder took ${ms.toFixed(1)} ms`);
  }
}

function check(m: KrpcMessage | undefined): void {
  if (!m) return;
  expect(m.t.length).toBeLessThanOrEqual(16);
  if (m.y === 'q') expect(m.id).toHaveLength(20);
  if (m.y === 'r') {
    expect(m.id).toHaveLength(20);
    expect(m.nodes.length).toBeLessThanOrEqual(MAX_NODES_PER_REPLY);
    expect(m.nodes6.length).toBeLessThanOrEqual(MAX_NODES_PER_REPLY);
    expect(m.values.length).toBeLessThanOrEqual(MAX_VALUES_PER_REPLY);
    for (const n of [...m.nodes, ...m.nodes6]) {
      expect(n.id).toHaveLength(20);
      expect(n.port).toBeGreaterThan(0);
    }
    for (const p of m.values) expect(p.port).toBeGreaterThan(0);
  }
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const bvalue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -1e6, max: 1e12 }),
    bytes(40),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const id20 = fc.oneof(bytes(22), fc.uint8Array({ minLength: 20, maxLength: 20 }).map(Buffer.from));
const message = fc.record(
  {
    t: fc.oneof(bytes(20), bvalue),
    y: fc.oneof(
      fc.constantFrom('q', 'r', 'e', 'x').map((s) => Buffer.from(s)),
      bvalue,
    ),
    q: fc.oneof(fc.constantFrom('ping', 'find_node', 'get_peers', 'announce_peer'), bvalue),
    a: fc.oneof(
      fc.record(
        {
          id: id20,
          target: id20,
          info_hash: id20,
          port: fc.oneof(fc.integer({ min: -5, max: 70000 }), bvalue),
          token: fc.oneof(bytes(70), bvalue),
          implied_port: fc.oneof(fc.integer({ min: -1, max: 2 }), bvalue),
          want: fc.oneof(fc.array(fc.constantFrom('n4', 'n6', 'zz')), bvalue),
        },
        { requiredKeys: [] },
      ),
      bvalue,
    ),
    r: fc.oneof(
      fc.record(
        {
          id: id20,
          nodes: fc.oneof(bytes(26 * 80 + 5), bvalue),
          nodes6: fc.oneof(bytes(38 * 10 + 5), bvalue),
          values: fc.oneof(fc.array(fc.oneof(bytes(19), bvalue), { maxLength: 150 }), bvalue),
          token: fc.oneof(bytes(70), bvalue),
        },
        { requiredKeys: [] },
      ),
      bvalue,
    ),
    e: fc.oneof(fc.tuple(fc.integer({ min: 0, max: 300 }), bytes(30)), bvalue),
  },
  { requiredKeys: [] },
);

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

const valid = fc.oneof(
  fc
    .tuple(bytes(4), fc.uint8Array({ minLength: 20, maxLength: 20 }))
    .map(([t, id]) => encodeQuery(t, 'get_peers', Buffer.from(id), { infoHash: Buffer.from(id) })),
  fc
    .tuple(bytes(4), fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.nat({ max: 20 }))
    .map(([t, id, n]) =>
      encodeResponse(t, Buffer.from(id), {
        nodes: Array.from({ length: n }, (_, i) => ({
          id: Buffer.from(id),
          host: `10.0.0.${i}`,
          port: 1 + i,
        })),
        values: [{ host: '1.2.3.4', port: 5 }],
        token: Buffer.from('tok'),
      }),
    ),
);

describe(`KRPC decoder under fuzzing (seed ${seed}, ${numRuns} runs)`, () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(bytes(600), (b) => check(decodeOrTdlError(b))),
      params,
    );
  });

  it('structured messages with wrong types', () => {
    fc.assert(
      fc.property(message, (m) => check(decodeOrTdlError(encode(m)))),
      params,
    );
  });

  it('mutated valid messages', () => {
    fc.assert(
      fc.property(mutated(valid), (b) => check(decodeOrTdlError(b))),
      params,
    );
  });

  it('cache decoder: random and mutated files', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          bytes(300),
          mutated(
            fc
              .tuple(fc.uint8Array({ minLength: 20, maxLength: 20 }), bytes(26 * 5))
              .map(([id, nodes]) => encode({ id: Buffer.from(id), nodes })),
          ),
        ),
        (b) => {
          try {
            const c = decodeCache(b);
            expect(c.id).toHaveLength(20);
          } catch (err) {
            if (!(err instanceof TdlError)) throw err;
          }
        },
      ),
      params,
    );
  });
});
