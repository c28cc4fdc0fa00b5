import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TdlError, WireError } from '../../src/errors.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { Framer } from '../../src/wire/framer.js';
import { decodeHandshake, encodeHandshake } from '../../src/wire/handshake.js';
import {
  type Message,
  decodeMessage,
  encodeMessage,
  maxMessageLength,
  readU32,
  writeU32,
} from '../../src/wire/messages.js';

// `FUZZ_SEED` / `FUZZ_RUNS` let `npm run fuzz` run longer with another seed.
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;
const params = { seed, numRuns };
/** Catches a blow-up, not slowness: generous for a busy machine (speed belongs in bench). */
const TIME_BOUND_MS = 5_000;
const MAX = maxMessageLength(2000);

type Outcome = { msgs: Message[]; error?: string };

/** Splits `buf` at the given (sorted, deduplicated) positions. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const pos = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of pos) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

/** Feeds parts to a Framer and collects messages; only WireError may be thrown. */
function runFramer(parts: Buffer[], maxLength: number): Outcome {
  const t0 = performance.now();
  const f = new Framer({ maxLength, expectHandshake: false });
  const msgs: Message[] = [];
  let out: Outcome = { msgs };
  try {
    for (const p of parts) {
      f.push(p);
      // Messages are views valid until the next push: keep copies.
      for (let m = f.next(); m !== null; m = f.next()) {
        if (m.type === 'piece') msgs.push({ ...m, block: Buffer.from(m.block) });
        else if (m.type === 'bitfield') msgs.push({ ...m, bitfield: Buffer.from(m.bitfield) });
        else if (m.type === 'extended') msgs.push({ ...m, payload: Buffer.from(m.payload) });
        else msgs.push(m);
      }
    }
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    out = { msgs, error: err.message };
  }
  const elapsed = performance.now() - t0;
  if (elapsed > TIME_BOUND_MS) throw new Error(`took ${elapsed.toFixed(1)} ms`);
  return out;
}

/** Reference: decodeMessage in a loop over the whole buffer. */
function runDecoder(buf: Buffer, maxLength: number): Outcome {
  const msgs: Message[] = [];
  let rest = buf;
  try {
    for (;;) {
      const r = decodeMessage(rest, maxLength);
      if (r === null) return { msgs };
      expect(r.size).toBeGreaterThan(0);
      expect(r.size).toBeLessThanOrEqual(rest.length);
      msgs.push(r.message);
      rest = rest.subarray(r.size);
    }
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return { msgs, error: err.message };
  }
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.constantFrom<Message>(
    { type: 'keep-alive' },
    { type: 'choke' },
    { type: 'unchoke' },
    { type: 'interested' },
    { type: 'not-interested' },
  ),
  u32.map((index): Message => ({ type: 'have', index })),
  fc
    .uint8Array({ maxLength: 250 })
    .map((u): Message => ({ type: 'bitfield', bitfield: Buffer.from(u) })),
  fc
    .tuple(u32, u32, u32, fc.boolean())
    .map(([index, begin, length, req]): Message =>
      req ? { type: 'request', index, begin, length } : { type: 'cancel', index, begin, length },
    ),
  fc
    .tuple(u32, u32, fc.uint8Array({ maxLength: 300 }))
    .map(([index, begin, b]): Message => ({ type: 'piece', index, begin, block: Buffer.from(b) })),
  fc.integer({ min: 0, max: 0xffff }).map((port): Message => ({ type: 'port', port })),
  fc
    .tuple(fc.constantFrom(13, 17), u32)
    .map(([id, index]): Message => ({ type: id === 13 ? 'suggest' : 'allowed-fast', index })),
  fc.constantFrom<Message>({ type: 'have-all' }, { type: 'have-none' }),
  fc
    .tuple(u32, u32, u32)
    .map(([index, begin, length]): Message => ({ type: 'reject', index, begin, length })),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 60 }))
    .map(([extId, p]): Message => ({ type: 'extended', extId, payload: Buffer.from(p) })),
  fc
    .tuple(fc.integer({ min: 21, max: 255 }), fc.nat({ max: 50 }))
    .map(([id, payloadLength]): Message => ({ type: 'unknown', id, payloadLength })),
);

// Frames with a random length prefix (often small, sometimes huge), id and payload.
const frame = fc
  .tuple(
    fc.oneof(fc.nat({ max: 40 }), u32),
    fc.integer({ min: 0, max: 20 }),
    fc.uint8Array({ maxLength: 40 }),
  )
  .map(([len, id, payload]) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(len, 0);
    head[4] = id;
    return Buffer.concat([head, payload]);
  });

const cuts = fc.array(fc.nat(), { maxLength: 6 });

describe('fuzz: wire codec', () => {
  it("readU32/writeU32 agree with Buffer's own big-endian uint32 at any offset", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 40 }), u32, fc.nat(), (bytes, v, o) => {
        const at = o % (bytes.length - 3);
        const b = Buffer.from(bytes);
        expect(readU32(b, at)).toBe(b.readUInt32BE(at));
        const mine = Buffer.from(bytes);
        writeU32(mine, at, v);
        b.writeUInt32BE(v, at);
        expect(mine.equals(b)).toBe(true);
      }),
      params,
    );
  });

  it('random bytes split at random points: messages or WireError, same as one-shot decode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), cuts, fc.nat({ max: 300 }), (u, c, cap) => {
        const buf = Buffer.from(u);
        const got = runFramer(split(buf, c), cap);
        expect(got).toEqual(runDecoder(buf, cap));
      }),
      params,
    );
  });

  it('random frames split at random points: messages or WireError, same as one-shot decode', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), cuts, (frames, c) => {
        const buf = Buffer.concat(frames);
        const got = runFramer(split(buf, c), 64);
        expect(got).toEqual(runDecoder(buf, 64));
      }),
      params,
    );
  });

  it('valid message streams survive any split unchanged', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 10 }), cuts, (msgs, c) => {
        const buf = Buffer.concat(msgs.map(encodeMessage));
        const got = runFramer(split(buf, c), MAX);
        expect(got.error).toBeUndefined();
        expect(got.msgs).toEqual(msgs);
      }),
      params,
    );
  });

  it('handshakes: random prefixes give null, a handshake or WireError', () => {
    const good = encodeHandshake(Buffer.alloc(20, 1), Buffer.alloc(20, 2));
    fc.assert(
      fc.property(fc.nat({ max: 68 }), fc.uint8Array({ maxLength: 80 }), cuts, (keep, tail, c) => {
        const buf = Buffer.concat([good.subarray(0, keep), tail]);
        const f = new Framer({ maxLength: MAX, expectHandshake: true });
        let hs: unknown = null;
        let err: unknown;
        try {
          for (const p of split(buf, c)) {
            f.push(p);
            if (hs === null) hs = f.nextHandshake();
          }
        } catch (e) {
          err = e;
        }
        if (err !== undefined) expect(err).toBeInstanceOf(WireError);
        // same verdict as a one-shot decode
        let ref: unknown = null;
        let refErr: unknown;
        try {
          ref = decodeHandshake(buf);
        } catch (e) {
          refErr = e;
        }
        expect(err === undefined).toBe(refErr === undefined);
        if (err === undefined) expect(hs).toEqual(ref);
      }),
      params,
    );
  });

  it('bitfields from the wire: a Bitfield or WireError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat({ max: 400 }), (u, n) => {
        try {
          const bf = Bitfield.fromWire(Buffer.from(u), n);
          expect(bf.toBuffer().equals(Buffer.from(u))).toBe(true);
          expect(bf.count).toBeLessThanOrEqual(n);
        } catch (err) {
          if (!(err instanceof TdlError)) throw err;
        }
      }),
      params,
    );
  });
});
