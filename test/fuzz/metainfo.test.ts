/**
 * parseTorrent on mutated torrents that use BEP 47 attributes, pad files, hybrid v2 trees, web
 * seeds, non-UTF-8 names and trailing bytes: it returns or throws a typed error, and what it
 * returns keeps the invariants (safe names, links inside, padding-aware totals).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TdlError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { checkRelativePath } from '../../src/metainfo/paths.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;

const BASE = encode({
  info: {
    name: Buffer.from('top\xff', 'latin1'),
    'piece length': 16384,
    pieces: Buffer.alloc(40),
    'meta version': 2,
    files: [
      { path: ['a'], length: 10, attr: 'x' },
      { path: ['.pad', '16374'], length: 16374, attr: 'p' },
      { path: [Buffer.from([0x62, 0xff])], length: 20 },
      { path: ['d', 'l'], length: 0, attr: 'l', 'symlink path': ['a'] },
    ],
    'file tree': {
      a: { '': { length: 10 } },
      d: { l: { '': { length: 0 } } },
      'b%FF': { '': { length: 20 } },
    },
  },
  'url-list': ['http://w.example/', 'ftp://x'],
  httpseeds: 'http://h.example/',
});

describe('parseTorrent on mutated BEP 47/52 torrents', () => {
  it('returns or throws a typed error; accepted results keep the invariants', () => {
    const base = parseTorrent(BASE);
    expect(base.hybrid).toBe(true);
    expect(base.files.map((f) => f.path.join('/'))).toEqual(['a', '.pad/16374', 'b%FF', 'd/l']);
    const mutation = fc.oneof(
      fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), insert: fc.boolean() }),
      fc.record({ at: fc.nat(), byte: fc.constant(-1), insert: fc.constant(false) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (ms, tail) => {
        let buf = Buffer.from(BASE);
        for (const m of ms) {
          const at = m.at % (buf.length + 1);
          if (m.byte < 0) buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1)]);
          else if (m.insert) {
            buf = Buffer.concat([buf.subarray(0, at), Buffer.from([m.byte]), buf.subarray(at)]);
          } else if (at < buf.length) buf[at] = m.byte;
        }
        if (tail) buf = Buffer.concat([buf, Buffer.from('xyz')]);
        let m;
        try {
          m = parseTorrent(buf);
        } catch (e) {
          if (!(e instanceof TdlError)) throw e;
          return;
        }
        let sum = 0;
        for (const f of m.files) {
          checkRelativePath(f.path, 'path');
          if (f.symlink) {
            checkRelativePath(f.symlink, 'target');
            expect(f.length).toBe(0);
          }
          sum += f.length;
        }
        expect(sum).toBe(m.length);
        for (const u of [...m.urlList, ...m.httpSeeds]) expect(u).toMatch(/^https?:\/\//);
      }),
      { seed, numRuns },
    );
  });
});
