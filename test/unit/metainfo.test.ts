import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BencodeError, MetainfoError, TdlError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { checkPathComponent } from '../../src/metainfo/paths.js';
import {
  MAX_FILES,
  MAX_PIECE_LENGTH,
  parseTorrent,
  pieceHash,
} from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const sha1 = (b: Uint8Array): Buffer => createHash('sha1').update(b).digest();

/** A minimal valid info dict (single-file, 1 piece) to which overrides are applied. */
function info(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'f.bin', 'piece length': 16384, length: 10, pieces: Buffer.alloc(20), ...over };
}

function multiInfo(
  files: { path: string[]; length?: number }[],
  over: Record<string, unknown> = {},
) {
  const total = files.reduce((s, f) => s + (f.length ?? 1), 0);
  return {
    name: 'top',
    'piece length': 16384,
    pieces: 'pieces' in over ? undefined : Buffer.alloc(20 * Math.ceil(total / 16384)),
    files: files.map((f) => ({ path: f.path, length: f.length ?? 1 })),
    ...over,
  };
}

function rejectsWith(root: unknown, field: string, pattern?: RegExp): MetainfoError {
  const buf = Buffer.isBuffer(root) ? root : encode(root);
  let caught: unknown;
  try {
    parseTorrent(buf);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MetainfoError);
  const err = caught as MetainfoError;
  expect(err.field).toBe(field);
  expect(err.message.startsWith(`${field}: `)).toBe(true);
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}

describe('parseTorrent: integers beyond 2^53 - 1', () => {
  /** `root` encoded, with each `i<from>e` replaced by `i<to>e`. */
  const withBig = (root: unknown, swaps: [number, string][]): Buffer => {
    let text = encode(root).toString('latin1');
    for (const [from, to] of swaps) text = text.replace(`i${from}e`, `i${to}e`);
    return Buffer.from(text, 'latin1');
  };

  it('are ignored in fields tdl does not read (a nanosecond creation date, an id)', () => {
    const buf = withBig({ 'creation date': 111_111, info: info({ 'x-id': 222_222 }) }, [
      [111_111, '1700000000123456789000'],
      [222_222, '-18446744073709551615'],
    ]);
    const t = parseTorrent(buf);
    expect(t.creationDate).toBeUndefined();
    const raw = buf.toString('latin1');
    const start = raw.indexOf('4:infod') + 6;
    expect(t.infoHash).toEqual(sha1(buf.subarray(start, buf.length - 1)));
  });

  it('in a file entry field tdl does not read too', () => {
    const root = { info: multiInfo([{ path: ['a'] }, { path: ['b'] }]) };
    (root.info.files[1] as Record<string, unknown>)['mtime'] = 333_333;
    const t = parseTorrent(withBig(root, [[333_333, '99999999999999999999']]));
    expect(t.files.map((f) => f.path)).toEqual([['a'], ['b']]);
  });

  it('refuse the torrent where tdl reads them, naming the field', () => {
    rejectsWith(
      withBig({ info: info({ length: 444_444 }) }, [[444_444, '1'.repeat(20)]]),
      'info.length',
      /11111111111111111111 is too large/,
    );
    const root = { info: multiInfo([{ path: ['a'], length: 555_555 }]) };
    rejectsWith(withBig(root, [[555_555, '1'.repeat(20)]]), 'info.files[0].length', /too large/);
  });
});

describe('parseTorrent: valid torrents', () => {
  it('parses a single-file torrent', () => {
    const data = randomBytesSeeded(40_000, 1);
    const t = makeTorrent({
      name: 'movie.mkv',
      pieceLength: 16384,
      files: { data },
      announce: 'http://tracker.example/announce',
      extraRoot: { comment: 'hello', 'created by': 'maker 1.0', 'creation date': 1700000000 },
    });
    const m = parseTorrent(t.torrent);
    expect(m.infoHash.equals(t.infoHash)).toBe(true);
    expect(m.infoHashHex).toBe(t.infoHash.toString('hex'));
    expect(m.name).toBe('movie.mkv');
    expect(m.multiFile).toBe(false);
    expect(m.length).toBe(40_000);
    expect(m.pieceLength).toBe(16384);
    expect(m.pieceCount).toBe(3);
    expect(m.files).toEqual([{ path: ['movie.mkv'], length: 40_000, offset: 0 }]);
    expect(m.announce).toBe('http://tracker.example/announce');
    expect(m.announceList).toEqual([['http://tracker.example/announce']]);
    expect(m.private).toBe(false);
    expect(m.comment).toBe('hello');
    expect(m.createdBy).toBe('maker 1.0');
    expect(m.creationDate).toBe(1700000000);
    expect(m.urlList).toEqual([]);
    // Piece sizes come from the layout built from the parsed fields.
    const layout = new Layout(m.files, m.pieceLength, m.length);
    expect(layout.pieceCount).toBe(m.pieceCount);
    for (let i = 0; i < 3; i++) {
      expect(pieceHash(m, i).equals(sha1(t.pieces[i]!))).toBe(true);
      expect(layout.pieceSize(i)).toBe(t.pieces[i]!.length);
    }
    expect(layout.pieceSize(2)).toBe(40_000 - 2 * 16384);
    expect(() => pieceHash(m, 3)).toThrow(RangeError);
    expect(() => layout.pieceSize(-1)).toThrow(RangeError);
  });

  it('parses a multi-file torrent with offsets and tiers', () => {
    const a = randomBytesSeeded(1000, 'a');
    const c = randomBytesSeeded(0, 'c');
    const d = randomBytesSeeded(70_000, 'd');
    const t = makeTorrent({
      name: 'album',
      pieceLength: 32768,
      files: [
        { path: ['cd1', 'a.flac'], data: a },
        { path: ['empty.txt'], data: c },
        { path: ['cd2', 'deep', 'd.flac'], data: d },
      ],
      announce: 'udp://one.example:80',
      announceList: [['udp://one.example:80', 'http://two.example/a'], ['http://three.example/a']],
      extraInfo: { private: 1 },
      extraRoot: { 'url-list': ['http://web.example/seed/'] },
    });
    const m = parseTorrent(t.torrent);
    expect(m.infoHash.equals(t.infoHash)).toBe(true);
    expect(m.multiFile).toBe(true);
    expect(m.name).toBe('album');
    expect(m.length).toBe(71_000);
    expect(m.pieceCount).toBe(3);
    expect(m.files).toEqual([
      { path: ['cd1', 'a.flac'], length: 1000, offset: 0 },
      { path: ['empty.txt'], length: 0, offset: 1000 },
      { path: ['cd2', 'deep', 'd.flac'], length: 70_000, offset: 1000 },
    ]);
    expect(m.announceList).toEqual([
      ['udp://one.example:80', 'http://two.example/a'],
      ['http://three.example/a'],
    ]);
    expect(m.private).toBe(true);
    expect(m.urlList).toEqual(['http://web.example/seed/']);
  });

  it('accepts a torrent with no trackers at all', () => {
    const m = parseTorrent(encode({ info: info() }));
    expect(m.announce).toBeUndefined();
    expect(m.announceList).toEqual([]);
  });

  it('hashes the raw info bytes even when keys are out of order', () => {
    const pieces = Buffer.alloc(20, 0xab);
    // "name" before "length" and "pieces" before "piece length": not canonical order.
    const rawInfo = Buffer.concat([
      Buffer.from('d4:name5:x.bin6:lengthi100e6:pieces20:'),
      pieces,
      Buffer.from('12:piece lengthi16384e7:privatei0ee'),
    ]);
    const torrent = Buffer.concat([
      Buffer.from('d8:announce17:http://t.example/4:info'),
      rawInfo,
      Buffer.from('7:comment2:hie'),
    ]);
    const expected = createHash('sha1').update(rawInfo).digest('hex');
    const m = parseTorrent(torrent);
    expect(m.infoHashHex).toBe(expected);
    // a re-encoding would sort the keys and give another hash
    const reencoded = sha1(
      encode({ name: 'x.bin', length: 100, pieces, 'piece length': 16384, private: 0 }),
    );
    expect(m.infoHashHex).not.toBe(reencoded.toString('hex'));
    expect(m.name).toBe('x.bin');
    expect(m.comment).toBe('hi');
  });

  it('ignores malformed optional fields but keeps well-formed ones', () => {
    const m = parseTorrent(
      encode({
        info: info(),
        announce: 7,
        'announce-list': [[1, 'http://ok.example/a'], 'junk', []],
        comment: Buffer.from([0xff, 0xfe]),
        'created by': ['x'],
        'creation date': 'yesterday',
        'url-list': 'http://web.example/f',
      }),
    );
    expect(m.announce).toBeUndefined();
    expect(m.announceList).toEqual([['http://ok.example/a']]);
    // Not UTF-8 (a legacy encoding): kept, its other bytes as %XX (as names), and said so.
    expect(m.comment).toBe('%FF%FE');
    expect(m.warnings).toContain('comment: not valid UTF-8; its other bytes are shown as %XX');
    expect(m.createdBy).toBeUndefined();
    expect(m.creationDate).toBeUndefined();
    expect(m.urlList).toEqual(['http://web.example/f']);
    // A `.utf-8` variant is preferred.
    const alt = parseTorrent(
      encode({
        info: info(),
        comment: Buffer.from('caf\xe9', 'latin1'),
        'comment.utf-8': 'caf\u00e9',
      }),
    );
    expect(alt.comment).toBe('caf\u00e9');
    expect(alt.warnings).toEqual([]);
    const m2 = parseTorrent(
      encode({ info: info(), announce: 'http://a.example/', 'announce-list': [] }),
    );
    expect(m2.announceList).toEqual([['http://a.example/']]);
  });

  it('NFC-normalises names and paths', () => {
    const decomposed = 'e\u0301t\u00e9';
    const m = parseTorrent(
      encode({ info: multiInfo([{ path: [decomposed, 'x'] }], { name: `caf${'e\u0301'}` }) }),
    );
    expect(m.name).toBe('caf\u00e9');
    expect(m.files[0]!.path).toEqual(['\u00e9t\u00e9', 'x']);
  });
});

describe('parseTorrent: field validation', () => {
  it('requires the top level and info to be dictionaries', () => {
    rejectsWith(['x'], 'torrent', /dictionary/);
    rejectsWith({ announce: 'x' }, 'info', /missing/);
    rejectsWith({ info: 'x' }, 'info', /dictionary/);
  });

  it('passes bencode errors through', () => {
    expect(() => parseTorrent(Buffer.from('d4:infoi03ee'))).toThrow(BencodeError);
  });

  it('validates piece length', () => {
    rejectsWith({ info: info({ 'piece length': 0 }) }, 'info.piece length', /minimum/);
    rejectsWith({ info: info({ 'piece length': -5 }) }, 'info.piece length');
    rejectsWith(
      { info: info({ 'piece length': MAX_PIECE_LENGTH + 1 }) },
      'info.piece length',
      /maximum/,
    );
    rejectsWith({ info: info({ 'piece length': 'big' }) }, 'info.piece length', /integer/);
    rejectsWith({ info: info({ 'piece length': undefined }) }, 'info.piece length', /missing/);
  });

  it('validates pieces', () => {
    rejectsWith(
      { info: info({ pieces: Buffer.alloc(41) }) },
      'info.pieces',
      /length 41 is not a multiple of 20/,
    );
    rejectsWith(
      { info: info({ pieces: Buffer.alloc(40) }) },
      'info.pieces',
      /does not match 1 pieces/,
    );
    rejectsWith({ info: info({ pieces: Buffer.alloc(0) }) }, 'info.pieces', /does not match/);
    rejectsWith({ info: info({ pieces: 5 }) }, 'info.pieces', /byte string/);
    rejectsWith({ info: info({ pieces: undefined }) }, 'info.pieces', /missing/);
  });

  it('validates lengths', () => {
    rejectsWith({ info: info({ length: -1 }) }, 'info.length', /minimum/);
    rejectsWith(
      { info: info({ length: 0, pieces: Buffer.alloc(0) }) },
      'info.length',
      /total length is 0/,
    );
    rejectsWith({ info: info({ length: '10' }) }, 'info.length', /integer/);
    rejectsWith({ info: info({ length: undefined }) }, 'info', /neither/);
    rejectsWith({ info: { ...multiInfo([{ path: ['a'] }]), length: 1 } }, 'info', /both/);
    rejectsWith({ info: multiInfo([{ path: ['a'], length: -3 }]) }, 'info.files[0].length');
    rejectsWith(
      { info: multiInfo([{ path: ['a'], length: 0 }], { pieces: Buffer.alloc(0) }) },
      'info.files',
      /total length is 0/,
    );
    const huge = Number.MAX_SAFE_INTEGER - 10;
    rejectsWith(
      {
        info: multiInfo(
          [
            { path: ['a'], length: huge },
            { path: ['b'], length: 100 },
          ],
          { pieces: Buffer.alloc(20) },
        ),
      },
      'info.files',
      /too large/,
    );
  });

  it('validates files', () => {
    rejectsWith({ info: multiInfo([]) }, 'info.files', /empty/);
    rejectsWith({ info: multiInfo([{ path: ['a'] }], { files: 'x' }) }, 'info.files', /list/);
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }], { files: [{ path: ['a'], length: 1 }, 5] }) },
      'info.files[1]',
      /dictionary/,
    );
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }, { path: [] }]) },
      'info.files[1].path',
      /empty/,
    );
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }], { files: [{ length: 1 }] }) },
      'info.files[0].path',
      /missing/,
    );
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }], { files: [{ path: 'a', length: 1 }] }) },
      'info.files[0].path',
      /list/,
    );
    rejectsWith(
      { info: multiInfo([{ path: ['a', 7 as unknown as string] }]) },
      'info.files[0].path[1]',
      /byte string/,
    );
    const tooMany = Array.from({ length: MAX_FILES + 1 }, () => ({ path: ['a'], length: 0 }));
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }], { files: tooMany }) },
      'info.files',
      /more than/,
    );
  });

  it('validates name and private', () => {
    rejectsWith({ info: info({ name: undefined }) }, 'info.name', /missing/);
    rejectsWith({ info: info({ name: 3 }) }, 'info.name', /byte string/);
  });

  it('takes any non-zero private as private, with a warning', () => {
    expect(parseTorrent(encode({ info: info({ private: 0 }) })).private).toBe(false);
    expect(parseTorrent(encode({ info: info({ private: 1 }) })).private).toBe(true);
    const m = parseTorrent(encode({ info: info({ private: 2 }) }));
    expect(m.private).toBe(true);
    expect(m.warnings).toContain('info.private is 2: taken as 1 (a private torrent)');
    for (const [value, shown] of [
      [-1, '-1'],
      ['1', '"1"'],
      ['yes', '"yes"'],
      [[1], 'not an integer'],
      [{ a: 1 }, 'not an integer'],
    ] as const) {
      const t = parseTorrent(encode({ info: info({ private: value }) }));
      expect(t.private).toBe(true);
      expect(t.warnings).toContain(`info.private is ${shown}: taken as 1 (a private torrent)`);
    }
  });

  it('uses name.utf-8 when name is not UTF-8', () => {
    const m = parseTorrent(
      encode({ info: info({ name: Buffer.from([0xe9]), 'name.utf-8': 'é.bin' }) }),
    );
    expect(m.name).toBe('é.bin');
  });
});

describe('parseTorrent: path attacks', () => {
  const cases: [string, string[], string, RegExp][] = [
    ['dot-dot', ['..', 'etc', 'passwd'], 'info.files[0].path[0]', /only dots/],
    ['dot-dot later', ['a', '..', '..', 'x'], 'info.files[0].path[1]', /only dots/],
    ['dot', ['.', 'x'], 'info.files[0].path[0]', /only dots/],
    ['three dots', ['...'], 'info.files[0].path[0]', /only dots/],
    ['absolute', ['/etc/passwd'], 'info.files[0].path[0]', /separator/],
    ['slash inside', ['a/b'], 'info.files[0].path[0]', /separator/],
    ['backslash', ['..\\..\\x'], 'info.files[0].path[0]', /separator/],
    ['drive letter', ['C:', 'x'], 'info.files[0].path[0]', /drive letter/],
    ['drive letter path', ['c:evil'], 'info.files[0].path[0]', /drive letter/],
    ['NUL', ['a\0b'], 'info.files[0].path[0]', /NUL/],
    ['empty', ['a', ''], 'info.files[0].path[1]', /empty/],
    ['256 bytes', ['a', 'x'.repeat(256)], 'info.files[0].path[1]', /is 256 bytes, longer than/],
    ['256 bytes of é', ['\u00e9'.repeat(128)], 'info.files[0].path[0]', /is 256 bytes/],
  ];
  for (const [label, path, field, pattern] of cases) {
    it(`refuses a path component: ${label}`, () => {
      rejectsWith({ info: multiInfo([{ path }]) }, field, pattern);
    });
  }

  it('takes a component of 255 bytes, the most a file name may have', () => {
    const m = parseTorrent(encode({ info: multiInfo([{ path: ['\u00e9'.repeat(127) + 'x'] }]) }));
    expect(Buffer.byteLength(m.files[0]!.path[0]!)).toBe(255);
  });

  it('applies the same rules to the name', () => {
    for (const name of ['..', '.', '/etc', 'a/b', 'C:', 'a\\b', '', 'x\0', 'n'.repeat(256)]) {
      rejectsWith({ info: info({ name }) }, 'info.name');
      rejectsWith({ info: multiInfo([{ path: ['f'] }], { name }) }, 'info.name');
    }
  });

  it('refuses NFC collisions (precomposed vs decomposed é)', () => {
    rejectsWith(
      { info: multiInfo([{ path: ['d', '\u00e9'] }, { path: ['d', 'e\u0301'] }]) },
      'info.files[1].path',
      /same path as info\.files\[0\]\.path/,
    );
  });

  it('refuses exact duplicate paths', () => {
    rejectsWith(
      { info: multiInfo([{ path: ['a', 'b'] }, { path: ['c'] }, { path: ['a', 'b'] }]) },
      'info.files[2].path',
      /same path/,
    );
  });

  it('refuses a file that is also a directory of another file, in either order', () => {
    rejectsWith(
      { info: multiInfo([{ path: ['a'] }, { path: ['a', 'b'] }]) },
      'info.files[1].path',
      /also a file/,
    );
    rejectsWith(
      { info: multiInfo([{ path: ['x', 'y', 'z'] }, { path: ['x', 'y'] }]) },
      'info.files[0].path',
      /also a file/,
    );
  });

  it('accepts siblings with similar names', () => {
    const m = parseTorrent(
      encode({
        info: multiInfo([
          { path: ['a', 'b'] },
          { path: ['ab'] },
          { path: ['a', 'bc'] },
          { path: ['a.', 'b'] },
        ]),
      }),
    );
    expect(m.files.map((f) => f.path.join('/'))).toEqual(['a/b', 'ab', 'a/bc', 'a./b']);
  });

  it('exports the component checker', () => {
    expect(() => checkPathComponent('ok.txt', 'f')).not.toThrow();
    expect(() => checkPathComponent('..', 'f')).toThrow(TdlError);
  });
});
