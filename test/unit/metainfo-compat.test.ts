import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BencodeError, MetainfoError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import {
  componentFromBytes,
  percentDecodeComponent,
  percentEncodeInvalidUtf8,
} from '../../src/metainfo/paths.js';
import { contentLength, parseTorrent } from '../../src/metainfo/torrent.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 2000;

const PL = 16384;
function multi(
  files: Record<string, unknown>[],
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  const total = files.reduce((s, f) => s + (f['length'] as number), 0);
  return {
    name: 'top',
    'piece length': PL,
    pieces: Buffer.alloc(20 * Math.max(1, Math.ceil(total / PL))),
    files,
    ...over,
  };
}

function fails(root: unknown, field: string, pattern?: RegExp): MetainfoError {
  let caught: unknown;
  try {
    parseTorrent(encode(root));
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(MetainfoError);
  const err = caught as MetainfoError;
  expect(err.field).toBe(field);
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}

describe('BEP 47 pad files and attributes', () => {
  it('marks pad files by attr "p" and by the old name, and leaves them out of totals', () => {
    const m = parseTorrent(
      encode({
        info: multi([
          { path: ['a.bin'], length: 1000 },
          { path: ['.pad', '15384'], length: 15384, attr: 'p' },
          { path: ['b.bin'], length: 500 },
          { path: ['_____padding_file_0_do not open'], length: 100 },
        ]),
      }),
    );
    expect(m.files.map((f) => Boolean(f.padding))).toEqual([false, true, false, true]);
    expect(m.length).toBe(1000 + 15384 + 500 + 100);
    expect(contentLength(m)).toBe(1500);
    expect(m.files[2]!.offset).toBe(16384);
  });

  it('lets pad files share a path, but still checks that their names are safe', () => {
    const m = parseTorrent(
      encode({
        info: multi([
          { path: ['a'], length: 10 },
          { path: ['.pad', '6'], length: 6, attr: 'p' },
          { path: ['b'], length: 10 },
          { path: ['.pad', '6'], length: 6, attr: 'p' },
          { path: ['c'], length: 1 },
        ]),
      }),
    );
    expect(m.files.filter((f) => f.padding)).toHaveLength(2);
    fails(
      { info: multi([{ path: ['..', 'x'], length: 1, attr: 'p' }]) },
      'info.files[0].path[0]',
      /only dots/,
    );
  });

  it('reads x and h, ignores unknown letters', () => {
    const m = parseTorrent(
      encode({
        info: multi([
          { path: ['run.sh'], length: 3, attr: 'xz' },
          { path: ['.hidden'], length: 3, attr: 'h' },
        ]),
      }),
    );
    expect(m.files[0]!.executable).toBe(true);
    expect(m.files[0]!.hidden).toBeUndefined();
    expect(m.files[1]!.hidden).toBe(true);
    const single = parseTorrent(
      encode({
        info: { name: 'x', 'piece length': PL, length: 1, pieces: Buffer.alloc(20), attr: 'x' },
      }),
    );
    expect(single.files[0]!.executable).toBe(true);
    fails(
      { info: multi([{ path: ['a'], length: 1, attr: 3 }]) },
      'info.files[0].attr',
      /byte string/,
    );
  });

  it('reads symlinks whose target stays inside the torrent, refuses the others', () => {
    const m = parseTorrent(
      encode({
        info: multi([
          { path: ['d', 'real.txt'], length: 5 },
          { path: ['d', 'link'], length: 0, attr: 'l', 'symlink path': ['d', 'real.txt'] },
        ]),
      }),
    );
    expect(m.files[1]!.symlink).toEqual(['d', 'real.txt']);
    const link = (target: unknown, length = 0) => ({
      info: multi([
        { path: ['a'], length: 1 },
        { path: ['l'], length, attr: 'l', 'symlink path': target },
      ]),
    });
    fails(
      link(['..', 'etc']),
      'info.files[1].symlink path',
      /the symbolic link "l" points to "\.\.\/etc": a link's target is a path inside the torrent's folder \(BEP 47\), without "\.\."/,
    );
    // As libtorrent 2.0 writes a link in a subfolder to a file above it.
    fails(
      {
        info: multi([
          { path: ['a'], length: 1 },
          { path: ['d', 'l'], length: 0, attr: 'xl', 'symlink path': ['..', 'a'] },
        ]),
      },
      'info.files[1].symlink path',
      /the symbolic link "d\/l" points to "\.\.\/a"/,
    );
    fails(link(['d', '.', 'x']), 'info.files[1].symlink path[1]', /only dots/);
    fails(link(['/etc/passwd']), 'info.files[1].symlink path[0]', /separator/);
    fails(link([]), 'info.files[1].symlink path', /empty/);
    fails(link(undefined), 'info.files[1].symlink path', /missing/);
    fails(link(['a'], 7), 'info.files[1].length', /symbolic link/);
    fails(link(['l']), 'info.files[1].symlink path', /itself/);
    fails(
      { info: { name: 'x', 'piece length': PL, length: 1, pieces: Buffer.alloc(20), attr: 'l' } },
      'info.attr',
      /symbolic link/,
    );
  });
});

describe('BEP 52 hybrid and v2-only torrents', () => {
  const tree = (entries: [string[], number][]): Record<string, unknown> => {
    const root: Record<string, unknown> = {};
    for (const [path, length] of entries) {
      let node = root;
      for (const c of path) node = (node[c] ??= {}) as Record<string, unknown>;
      node[''] = { length, 'pieces root': Buffer.alloc(32) };
    }
    return root;
  };

  it('loads a hybrid torrent over v1 with the v1 info hash', () => {
    const info = multi(
      [
        { path: ['a'], length: 10 },
        { path: ['.pad', '16374'], length: 16374, attr: 'p' },
        { path: ['b', 'c'], length: 20 },
      ],
      {
        'meta version': 2,
        'file tree': tree([
          [['a'], 10],
          [['b', 'c'], 20],
        ]),
      },
    );
    const buf = encode({ info, 'piece layers': {} });
    const m = parseTorrent(buf);
    expect(m.hybrid).toBe(true);
    expect(m.infoHash).toEqual(createHash('sha1').update(encode(info)).digest());
    const single = parseTorrent(
      encode({
        info: {
          name: 'f',
          'piece length': PL,
          length: 5,
          pieces: Buffer.alloc(20),
          'meta version': 2,
          'file tree': tree([[['f'], 5]]),
        },
      }),
    );
    expect(single.hybrid).toBe(true);
  });

  it('takes a symbolic link in the v2 tree without a length, as libtorrent writes it', () => {
    const t = tree([[['a'], 10]]);
    t['l'] = { '': { attr: 'l', 'symlink path': ['a'] } };
    const info = multi(
      [
        { path: ['a'], length: 10 },
        { path: ['l'], length: 0, attr: 'l', 'symlink path': ['a'] },
      ],
      { 'meta version': 2, 'file tree': t },
    );
    const m = parseTorrent(encode({ info, 'piece layers': {} }));
    expect(m.hybrid).toBe(true);
    expect(m.files[1]).toMatchObject({ path: ['l'], symlink: ['a'] });
  });

  it('compares v2 names by their bytes: not UTF-8, or with a byte order mark, as libtorrent makes them', () => {
    // `cafX.txt` stands for the Latin-1 name caf\xe9.txt, written into the bytes once encoded.
    const latin = Buffer.from(
      encode({
        info: multi([{ path: ['cafX.txt'], length: 10 }], {
          'meta version': 2,
          'file tree': tree([[['cafX.txt'], 10]]),
        }),
      }),
    );
    for (let i = latin.indexOf('cafX'); i >= 0; i = latin.indexOf('cafX', i + 1))
      latin[i + 3] = 0xe9;
    const m = parseTorrent(latin);
    expect(m.hybrid).toBe(true);
    expect(m.files[0]!.path).toEqual(['caf%E9.txt']);
    // A name that starts with U+FEFF: the decoder's keys drop it, the names keep it.
    const bom = parseTorrent(
      encode({
        info: multi([{ path: ['\ufeffnotes.txt'], length: 10 }], {
          'meta version': 2,
          'file tree': tree([[['\ufeffnotes.txt'], 10]]),
        }),
      }),
    );
    expect(bom.hybrid).toBe(true);
    expect(bom.files[0]!.path).toEqual(['\ufeffnotes.txt']);
    // A v2 name that is the hex of the v1 name's bytes is another name.
    const hex = Buffer.from(
      encode({
        info: multi([{ path: ['cafX.txt'], length: 10 }], {
          'meta version': 2,
          'file tree': tree([[['636166e92e747874'], 10]]),
        }),
      }),
    );
    hex[hex.indexOf('cafX') + 3] = 0xe9;
    expect(() => parseTorrent(hex)).toThrow(
      /"caf%E9.txt" \(10 bytes\) in v1 but "636166e92e747874"/,
    );
  });

  it('refuses a hybrid whose v2 tree disagrees with the v1 list, saying how', () => {
    const files = [
      { path: ['a'], length: 10 },
      { path: ['b'], length: 20 },
    ];
    const bad = (entries: [string[], number][]) => ({
      info: multi(files, { 'meta version': 2, 'file tree': tree(entries) }),
    });
    fails(
      bad([
        [['a'], 10],
        [['b'], 21],
      ]),
      'info.file tree',
      /file 2 is "b" \(20 bytes\) in v1 but "b" \(21 bytes\) in v2/,
    );
    fails(
      bad([
        [['a'], 10],
        [['x'], 20],
      ]),
      'info.file tree',
      /"x"/,
    );
    fails(bad([[['a'], 10]]), 'info.file tree', /nothing in v2/);
    fails({ info: multi(files, { 'meta version': 2 }) }, 'info.file tree', /missing/);
  });

  it('refuses a hybrid whose v1 padding does not start each file where v2 does', () => {
    // v2 starts every file with data at a piece boundary: a v1 list with a pad file one byte
    // short, a piece too long or missing, or more than a piece of padding at the end describes
    // other bytes (libtorrent: "the v1 and v2 file metadata does not match").
    const withPads = (pad: number, tail: number) =>
      multi(
        [
          { path: ['a'], length: 10 },
          ...(pad > 0 ? [{ path: ['.pad', String(pad)], length: pad, attr: 'p' }] : []),
          { path: ['a0'], length: 0 },
          { path: ['b'], length: 20 },
          ...(tail > 0 ? [{ path: ['.pad', String(tail)], length: tail, attr: 'p' }] : []),
        ],
        {
          'meta version': 2,
          'file tree': tree([
            [['a'], 10],
            [['a0'], 0],
            [['b'], 20],
          ]),
        },
      );
    // As libtorrent writes them, with or without padding after the last file.
    expect(parseTorrent(encode({ info: withPads(16374, 16364) })).hybrid).toBe(true);
    expect(parseTorrent(encode({ info: withPads(16374, 0) })).hybrid).toBe(true);
    fails(
      { info: withPads(16373, 0) },
      'info.file tree',
      /file 3 \("b"\) starts at byte 16383 in v1 but at 16384 in v2/,
    );
    fails({ info: withPads(16374 + PL, 0) }, 'info.file tree', /starts at byte 32768 in v1/);
    fails({ info: withPads(0, 0) }, 'info.file tree', /starts at byte 10 in v1 but at 16384/);
    fails(
      { info: withPads(16374, 16364 + PL) },
      'info.file tree',
      /the v1 data is 49152 bytes, but the v2 files end at byte 16404/,
    );
  });

  it('says plainly that v2-only torrents are not supported', () => {
    const err = fails(
      {
        info: {
          name: 'x',
          'piece length': PL,
          'meta version': 2,
          'file tree': tree([[['x'], 1]]),
        },
      },
      'info',
    );
    expect(err.message).toBe('info: BitTorrent v2-only torrents are not supported yet');
  });
});

describe('bytes after the top-level dictionary', () => {
  it('are accepted with a warning; the info hash is unchanged', () => {
    const info = { name: 'x', 'piece length': PL, length: 1, pieces: Buffer.alloc(20) };
    const base = encode({ info });
    const clean = parseTorrent(base);
    expect(clean.warnings).toEqual([]);
    for (const extra of ['\n', '\r\n\0\0', 'garbage', 'd4:infoi1ee']) {
      const m = parseTorrent(Buffer.concat([base, Buffer.from(extra)]));
      expect(m.infoHashHex).toBe(clean.infoHashHex);
      expect(m.warnings).toEqual([
        `${Buffer.byteLength(extra)} byte(s) after the end of the torrent's top-level dictionary were ignored`,
      ]);
    }
  });

  it('stay strict inside the dictionary', () => {
    expect(() => parseTorrent(Buffer.from('d4:infod4:name1:xee'.slice(0, -1)))).toThrow(
      BencodeError,
    );
    expect(() => parseTorrent(Buffer.from('d1:ai01ee\n'))).toThrow(BencodeError);
  });
});

describe('names that are not UTF-8', () => {
  it('uses the .utf-8 keys when present', () => {
    const m = parseTorrent(
      encode({
        info: multi([{ path: [Buffer.from([0xe9])], 'path.utf-8': ['é'], length: 1 }], {
          name: Buffer.from([0xff]),
          'name.utf-8': 'dossier',
        }),
      }),
    );
    expect(m.name).toBe('dossier');
    expect(m.files[0]!.path).toEqual(['é']);
    expect(m.warnings).toEqual([]);
  });

  it('maps them by percent-encoding, with a warning, then checks them as usual', () => {
    const m = parseTorrent(
      encode({
        info: multi([
          { path: [Buffer.from('caf\xe9 100%.txt', 'latin1')], length: 1 },
          { path: [Buffer.from('café', 'utf8')], length: 1 },
        ]),
      }),
    );
    expect(m.files[0]!.path).toEqual(['caf%E9 100%25.txt']);
    expect(m.files[1]!.path).toEqual(['café']);
    expect(m.warnings).toEqual([
      'info.files[0].path[0]: not valid UTF-8, named "caf%E9 100%25.txt"',
    ]);
    // A mapped name that equals another file's is a collision like any other.
    fails(
      {
        info: multi([
          { path: [Buffer.from([0xff])], length: 1 },
          { path: ['%FF'], length: 1 },
        ]),
      },
      'info.files[1].path',
      /same path/,
    );
    // NUL survives the mapping (it is valid UTF-8) and is refused.
    fails(
      { info: multi([{ path: [Buffer.from([0xff, 0])], length: 1 }]) },
      'info.files[0].path[0]',
      /NUL/,
    );
  });

  it('keeps at most 20 name warnings and counts the rest', () => {
    const files = Array.from({ length: 30 }, (_, i) => ({
      path: [Buffer.from([0xff, 0x41 + (i % 26), 0x30 + Math.floor(i / 26)])],
      length: 1,
    }));
    const m = parseTorrent(encode({ info: multi(files) }));
    expect(m.warnings).toHaveLength(21);
    expect(m.warnings[20]).toBe('10 more warning(s) like the above');
  });

  it('the mapping is reversible and never remaps valid UTF-8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (u) => {
        const b = Buffer.from(u);
        const { text, remapped } = componentFromBytes(b);
        const valid = Buffer.from(b.toString('utf8'), 'utf8').equals(b);
        expect(remapped).toBe(!valid);
        if (remapped) {
          expect(percentDecodeComponent(text).equals(b)).toBe(true);
          expect(text).not.toContain('\uFFFD');
        } else {
          expect(text).toBe(new TextDecoder('utf-8', { ignoreBOM: true }).decode(b));
        }
      }),
      { seed, numRuns },
    );
    expect(percentEncodeInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe('%ED%A0%80');
    expect(percentEncodeInvalidUtf8(Buffer.from([0xf0, 0x9f, 0x98, 0x80, 0xc0]))).toBe('😀%C0');
  });
});

describe('web seeds', () => {
  it('parses url-list and httpseeds, keeping http(s) URLs only', () => {
    const m = parseTorrent(
      encode({
        info: { name: 'x', 'piece length': PL, length: 1, pieces: Buffer.alloc(20) },
        'url-list': ['http://a.example/x', 'ftp://b.example/x', '', 'https://c.example/', 'nope'],
        httpseeds: ['http://h.example/seed', 'http://h.example/seed', 'file:///etc/passwd'],
      }),
    );
    expect(m.urlList).toEqual(['http://a.example/x', 'https://c.example/']);
    expect(m.httpSeeds).toEqual(['http://h.example/seed']);
    expect(m.warnings).toEqual([
      'url-list[1]: "ftp://b.example/x" ignored (not an http or https URL)',
      'url-list[4]: "nope" ignored (not an http or https URL)',
      'httpseeds[2]: "file:///etc/passwd" ignored (not an http or https URL)',
    ]);
    const bad = parseTorrent(
      encode({
        info: { name: 'x', 'piece length': PL, length: 1, pieces: Buffer.alloc(20) },
        'url-list': 5,
      }),
    );
    expect(bad.urlList).toEqual([]);
    expect(bad.httpSeeds).toEqual([]);
    expect(bad.warnings).toEqual(['url-list: ignored (must be a URL or a list of URLs)']);
  });
});
