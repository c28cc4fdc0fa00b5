import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MetainfoError } from '../../src/errors.js';
import {
  MAX_MAGNET_PEERS,
  MAX_MAGNET_TRACKERS,
  MAX_MAGNET_WEB_SEEDS,
  MAX_SELECT_ONLY,
  type Magnet,
  magnetUri,
  parseMagnet,
} from '../../src/metainfo/magnet.js';

// `FUZZ_SEED` / `FUZZ_RUNS` let `npm run fuzz` run longer with another seed.
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;
const params = { seed, numRuns };
// Generous: catches a parser gone quadratic or hung, not a GC pause on a busy machine.
const SLOW_MS = 2000;

/** parseMagnet's result, or undefined when it threw a MetainfoError (anything else fails). */
function parse(uri: string): Magnet | undefined {
  const t0 = performance.now();
  try {
    return parseMagnet(uri);
  } catch (err) {
    if (!(err instanceof MetainfoError)) throw err;
    expect(err.message).not.toBe('');
    return undefined;
  } finally {
    const ms = performance.now() - t0;
    if (ms > SLOW_MS) throw new Error(`parseMagnet took ${ms.toFixed(1)} ms`);
  }
}

function checkMagnet(m: Magnet | undefined): void {
  if (!m) return;
  expect(m.infoHash).toHaveLength(20);
  expect(m.infoHashHex).toBe(m.infoHash.toString('hex'));
  expect(m.trackers.length).toBeLessThanOrEqual(MAX_MAGNET_TRACKERS);
  for (const tier of m.trackers) expect(tier).toHaveLength(1);
  expect(new Set(m.trackers.flat()).size).toBe(m.trackers.length);
  expect(m.peers.length).toBeLessThanOrEqual(MAX_MAGNET_PEERS);
  for (const p of m.peers) {
    expect(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535).toBe(true);
    expect(p.host).not.toBe('');
  }
  expect(m.webSeeds.length).toBeLessThanOrEqual(MAX_MAGNET_WEB_SEEDS);
  if (m.selectOnly) {
    expect(m.selectOnly.length).toBeLessThanOrEqual(MAX_SELECT_ONLY);
    for (let i = 0; i < m.selectOnly.length; i++) {
      expect(m.selectOnly[i]!).toBeLessThan(MAX_SELECT_ONLY);
      if (i > 0) expect(m.selectOnly[i]!).toBeGreaterThan(m.selectOnly[i - 1]!);
    }
  }
  expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
}

const hex40 = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((u) => Buffer.from(u).toString('hex'));
const pieces = fc.constantFrom(
  'xt=urn:btih:',
  'xt=urn:btmh:1220',
  'dn=',
  'tr=',
  'x.pe=',
  'ws=',
  'so=',
  '__proto__=',
  'constructor',
  '%',
  '%2',
  '%25',
  '%zz',
  '%ff',
  '%c3%a9',
  '+',
  '&',
  '=',
  ':',
  '[',
  ']',
  ',',
  '-',
  '0',
  '65535',
  '999999999',
  '1.2.3.4:80',
  '[::1]:1',
  'udp://t:1',
);
const magnetish = fc
  .tuple(
    fc.constantFrom('magnet:?', 'MAGNET:?', 'magnet:', ''),
    fc.array(fc.oneof(pieces, hex40, fc.string({ maxLength: 8 })), { maxLength: 30 }),
  )
  .map(([head, parts]) => head + parts.join(''));

describe('fuzz: magnet links', () => {
  it('random text: a Magnet or a MetainfoError, fast', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => checkMagnet(parse(`magnet:?${s}`))),
      params,
    );
  });

  it('magnet-shaped text: a Magnet or a MetainfoError, fast', () => {
    fc.assert(
      fc.property(magnetish, (s) => checkMagnet(parse(s))),
      params,
    );
  });

  it('links tdl prints parse back to the same hash, name and trackers', () => {
    fc.assert(
      fc.property(
        hex40,
        fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: undefined }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 30 }), { maxLength: 5 }),
        (hex, name, trackers) => {
          const m = parseMagnet(magnetUri(hex, name, trackers));
          expect(m.infoHashHex).toBe(hex);
          if (name !== undefined && name.trim() !== '') expect(m.displayName).toBe(name);
          const kept = [...new Set(trackers.map((t) => t.trim()).filter((t) => t !== ''))];
          expect(m.trackers).toEqual(kept.map((t) => [t]));
        },
      ),
      params,
    );
  });

  it('mutated valid links: a Magnet or a MetainfoError', () => {
    const base = magnetUri('c12fe1c06bba254a9dc9f519b335aa7c1367a88a', 'name ü', [
      'udp://tracker:80/announce',
    ]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 0x7f })), { maxLength: 6 }),
        (edits) => {
          const chars = [...`${base}&x.pe=1.2.3.4:5&so=1-3`];
          for (const [pos, c] of edits) chars[pos % chars.length] = String.fromCharCode(c);
          checkMagnet(parse(chars.join('')));
        },
      ),
      params,
    );
  });
});
