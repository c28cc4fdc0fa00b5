/**
 * The fast route of the torrent parser (file entries checked in place, the file list kept as
 * positions and made on demand, collisions found by hashes) against the full route
 * (`fullRoute`: every entry decoded and read by parseFileEntry, the list built at once): same
 * files, warnings and errors, on hand-picked entries, on every truncation of a torrent and on
 * seeded random ones.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeStrict,
  encode,
  type BValue,
  type RawFileEntry,
} from '../../src/metainfo/bencode.js';
import {
  contentLength,
  fileAt,
  fileCount,
  isPaddingFile,
  parseTorrent,
  type Metainfo,
} from '../../src/metainfo/torrent.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;

type Outcome = { ok: unknown } | { error: string };

/** What parseTorrent gives, in a comparable form (the file list read through m.files). */
function outcome(buf: Buffer, fullRoute: boolean): Outcome {
  try {
    const m = parseTorrent(buf, { fullRoute });
    return { ok: { ...m, files: m.files } };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

function expectSameRoutes(buf: Buffer): Outcome {
  const fast = outcome(buf, false);
  expect(fast).toStrictEqual(outcome(buf, true));
  return fast;
}

function torrent(files: unknown[], over: Record<string, unknown> = {}): Buffer {
  return encode({
    announce: 'http://t.example/a',
    info: { name: 'top', 'piece length': 16, pieces: Buffer.alloc(20 * 64), files, ...over },
  });
}

/** A torrent whose piece count fits the total length of `files`. */
function fitted(files: { length: number }[]): Buffer {
  const total = files.reduce(
    (n, f) => n + (typeof f?.length === 'number' ? Math.max(0, f.length) : 0),
    0,
  );
  return encode({
    info: {
      name: 'top',
      'piece length': 16,
      pieces: Buffer.alloc(20 * Math.max(1, Math.ceil(total / 16))),
      files,
    },
  });
}

describe('fast and full route agree', () => {
  const cases: [string, unknown[]][] = [
    [
      'plain',
      [
        { path: ['a', 'b'], length: 10 },
        { path: ['c'], length: 6 },
      ],
    ],
    [
      'attributes',
      [
        { path: ['x'], length: 8, attr: 'xh' },
        { path: ['y'], length: 8, attr: 'q' },
      ],
    ],
    [
      'padding by attr and by name',
      [
        { path: ['a'], length: 5 },
        { path: ['.pad', '11'], length: 11, attr: 'p' },
        { path: ['_____padding_file_0'], length: 16 },
        { path: ['.pad', '11'], length: 0, attr: 'p' },
      ],
    ],
    [
      'symbolic link',
      [
        { path: ['a'], length: 16 },
        { path: ['l'], length: 0, attr: 'l', 'symlink path': ['a'] },
      ],
    ],
    ['path.utf-8 used', [{ path: [Buffer.from([0xff])], 'path.utf-8': ['ok'], length: 16 }]],
    ['path.utf-8 not UTF-8', [{ path: ['a'], 'path.utf-8': [Buffer.from([0xff])], length: 16 }]],
    ['path.utf-8 of another length', [{ path: ['a'], 'path.utf-8': ['b', 'c'], length: 16 }]],
    ['unsafe path.utf-8', [{ path: ['a'], 'path.utf-8': ['..'], length: 16 }]],
    [
      'names to normalise',
      [
        { path: ['e\u0301', 'Ω'], length: 8 },
        { path: ['\u00e9', 'x'], length: 8 },
      ],
    ],
    ['not UTF-8', [{ path: [Buffer.from([0x62, 0xff])], length: 16 }]],
    ['other keys', [{ path: ['a'], length: 16, md5sum: 'abc', sha1: Buffer.alloc(20), mtime: 7 }]],
    ['a nested other key', [{ path: ['a'], length: 16, x: ['y'] }]],
    [
      'same path twice',
      [
        { path: ['a', 'b'], length: 8 },
        { path: ['a', 'b'], length: 8 },
      ],
    ],
    [
      'a file inside a file',
      [
        { path: ['a'], length: 8 },
        { path: ['a', 'b'], length: 8 },
      ],
    ],
    [
      'a file where a folder is',
      [
        { path: ['a', 'b'], length: 8 },
        { path: ['a'], length: 8 },
      ],
    ],
    [
      'same name once padding',
      [
        { path: ['p'], length: 8, attr: 'p' },
        { path: ['p'], length: 8 },
      ],
    ],
    ['empty path', [{ path: [], length: 16 }]],
    ['empty name', [{ path: ['a', ''], length: 16 }]],
    ['dots', [{ path: ['..', 'a'], length: 16 }]],
    ['drive letter', [{ path: ['c:', 'a'], length: 16 }]],
    ['separator', [{ path: ['a\\b'], length: 16 }]],
    ['negative length', [{ path: ['a'], length: -1 }]],
    ['length as text', [{ path: ['a'], length: '16' }]],
    ['no length', [{ path: ['a'] }]],
    ['attr not text', [{ path: ['a'], length: 16, attr: 1 }]],
    ['a name not text', [{ path: ['a', 7], length: 16 }]],
    ['too deep', [{ path: Array.from({ length: 129 }, () => 'd'), length: 16 }]],
    ['a name of 256 bytes', [{ path: ['n'.repeat(256)], length: 16 }]],
    ['a name of 255 bytes', [{ path: ['n'.repeat(255)], length: 16 }]],
    ['an entry not a dictionary', [7]],
  ];
  for (const [name, files] of cases) {
    it(name, () => {
      expectSameRoutes(fitted(files as { length: number }[]));
    });
  }

  it('keys the fast route leaves to the full one: __proto__, duplicates, non-ASCII', () => {
    const entry = (body: string) =>
      Buffer.from(
        `d4:infod5:filesl${body}e4:name3:top12:piece lengthi16e6:pieces20:${'\0'.repeat(20)}ee`,
        'latin1',
      );
    for (const body of [
      'd6:lengthi1e4:pathl1:aee',
      'd6:lengthi1e6:lengthi1e4:pathl1:aee',
      'd9:__proto__i1e6:lengthi1e4:pathl1:aee',
      'd1:xi1e1:xi2e6:lengthi1e4:pathl1:aee',
      'd9:\xef\xbb\xbflengthi2e6:lengthi1e4:pathl1:aee',
      'd2:\xc3\xa9i1e6:lengthi1e4:pathl1:aee',
      'd6:lengthi01e4:pathl1:aee',
      'd6:lengthi-0e4:pathl1:aee',
      'd6:lengthi1e4:pathl01:aee',
      'd6:lengthi1e4:pathl1:ae4:pathl1:bee',
    ]) {
      expectSameRoutes(entry(body));
    }
  });

  it('every truncation and every one-byte change of a torrent', () => {
    const buf = torrent([
      { path: ['a', 'b'], length: 10, attr: 'x' },
      { path: ['.pad', '6'], length: 6, attr: 'p' },
      { path: ['a', 'c'], 'path.utf-8': ['a', 'ç'], length: 16, md5sum: 'm' },
      { path: ['l'], length: 0, attr: 'l', 'symlink path': ['a', 'b'] },
    ]);
    for (let n = 0; n <= buf.length; n++) expectSameRoutes(buf.subarray(0, n));
    for (let i = 0; i < buf.length; i++) {
      for (const b of [0x31, 0x65, 0xff]) {
        const changed = Buffer.from(buf);
        changed[i] = b;
        expectSameRoutes(changed);
      }
    }
  });

  it('random file lists (seeded)', () => {
    const name = fc.oneof(
      fc.constantFrom(
        'a',
        'b',
        'dir',
        'e\u0301',
        'Ω',
        '..',
        '',
        'c:',
        'x/y',
        '_____padding_file_1',
      ),
      fc.uint8Array({ minLength: 0, maxLength: 3 }).map((u) => Buffer.from(u)),
    );
    const entry = fc.record(
      {
        path: fc.array(name, { minLength: 0, maxLength: 3 }),
        'path.utf-8': fc.array(name, { minLength: 1, maxLength: 3 }),
        length: fc.integer({ min: -1, max: 20 }),
        attr: fc.constantFrom('', 'p', 'x', 'h', 'l', 'xh'),
        md5sum: fc.constant('abc'),
      },
      { requiredKeys: ['path', 'length'] },
    );
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), (files) => {
        expectSameRoutes(fitted(files));
      }),
      { seed, numRuns: 2000 },
    );
  });
});

describe('the file list made on demand', () => {
  function big(): Metainfo {
    const files = [];
    for (let i = 0; i < 500; i++) {
      files.push({ path: [`d${i % 7}`, `f${i}`], length: i % 3 === 0 ? 0 : 5 });
      if (i % 50 === 0) files.push({ path: ['.pad', `${i}`], length: 3, attr: 'p' });
    }
    return parseTorrent(fitted(files));
  }

  it('fileAt, fileCount, isPaddingFile and contentLength agree with m.files', () => {
    const lazy = big();
    const n = fileCount(lazy);
    const one = Array.from({ length: n }, (_, i) => fileAt(lazy, i));
    const padding = Array.from({ length: n }, (_, i) => isPaddingFile(lazy, i));
    const content = contentLength(lazy);
    // Read before m.files: nothing was kept.
    expect(fileAt(lazy, 3)).not.toBe(fileAt(lazy, 3));
    const files = lazy.files;
    expect(files).toBe(lazy.files);
    expect(one).toStrictEqual(files);
    expect(padding).toStrictEqual(files.map((f) => f.padding === true));
    expect(content).toBe(files.reduce((s, f) => s + (f.padding ? 0 : f.length), 0));
    expect(fileAt(lazy, 3)).toBe(files[3]);
    expect(() => fileAt(big(), n)).toThrow(RangeError);
  });

  it('folder names are shared strings, file objects are as before', () => {
    const m = big();
    expect(m.files[0]).toStrictEqual({ path: ['d0', 'f0'], length: 0, offset: 0 });
    expect(m.files[1]).toStrictEqual({ path: ['.pad', '0'], length: 3, offset: 0, padding: true });
    expect(Object.keys(m)).toContain('files');
    expect({ ...m }.files).toBe(m.files);
  });
});

describe('decodeStrict onFileEntry', () => {
  it('hands plain entries as positions and the others built, in one count', () => {
    const buf = encode({
      info: { files: [{ length: 1, path: ['a'] }, { length: 2, path: ['b'], x: ['y'] }, 3] },
    });
    const seen: string[] = [];
    const { value } = decodeStrict(buf, {
      streamList: {
        path: ['info', 'files'],
        onItem: (item: BValue, i) => seen.push(`built ${i} ${JSON.stringify(item)}`),
        onFileEntry: (e: RawFileEntry, i) => {
          const names = [];
          for (let k = 0; k < e.pathNames; k++) {
            names.push(buf.toString('latin1', e.path[2 * k], e.path[2 * k + 1]));
          }
          seen.push(
            `raw ${i} ${e.length} ${names.join('/')} ${buf.toString('latin1', e.start, e.end)}`,
          );
        },
      },
    });
    expect(seen[0]).toBe('raw 0 1 a d6:lengthi1e4:pathl1:aee');
    expect(seen[1]).toMatch(/^built 1 /);
    expect(seen[2]).toBe('built 2 3');
    expect(value).toStrictEqual(
      decodeStrict(buf, { streamList: { path: ['info', 'files'], onItem: () => {} } }).value,
    );
  });
});
