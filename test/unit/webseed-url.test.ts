import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/storage/layout.js';
import { encode } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import {
  encodeComponent,
  fileUrl,
  pieceRanges,
  runRanges,
  type WebSeedMeta,
} from '../../src/webseed/url.js';

const params = { seed: Number(process.env['FUZZ_SEED'] ?? 42), numRuns: 500 };

function layoutOf(lengths: number[], pieceLength: number): Layout {
  let offset = 0;
  const files = lengths.map((length) => {
    const f = { offset, length };
    offset += length;
    return f;
  });
  return new Layout(files, pieceLength, offset);
}

function metaOf(lengths: number[], padding: number[] = []): WebSeedMeta {
  return {
    name: 'top dir',
    multiFile: true,
    files: lengths.map((_, i) => ({ path: ['d', `f${i}.bin`], padding: padding.includes(i) })),
  };
}

describe('encodeComponent', () => {
  it('keeps RFC 3986 unreserved characters and encodes every other UTF-8 byte', () => {
    expect(encodeComponent('AZaz09-._~')).toBe('AZaz09-._~');
    expect(encodeComponent('a b')).toBe('a%20b');
    expect(encodeComponent('100%')).toBe('100%25');
    expect(encodeComponent('#1?x=y&z')).toBe('%231%3Fx%3Dy%26z');
    expect(encodeComponent('a/b')).toBe('a%2Fb');
    expect(encodeComponent('+')).toBe('%2B');
    expect(encodeComponent('é')).toBe('%C3%A9');
    expect(encodeComponent('日本')).toBe('%E6%97%A5%E6%9C%AC');
    expect(encodeComponent('😀')).toBe('%F0%9F%98%80');
  });

  it('round-trips through decodeURIComponent and leaves no reserved character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const e = encodeComponent(s);
        expect(e).toMatch(/^[A-Za-z0-9\-._~%]*$/);
        expect(decodeURIComponent(e)).toBe(s);
      }),
      params,
    );
  });
});

describe('fileUrl (BEP 19)', () => {
  const single = { name: 'my file #1.iso', multiFile: false };
  const multi = { name: 'My Album', multiFile: true };

  it('single-file: the URL as written, or with the encoded name after a trailing slash', () => {
    expect(fileUrl('http://h/path/file.iso', single, ['my file #1.iso'])).toBe(
      'http://h/path/file.iso',
    );
    expect(fileUrl('http://h/path/', single, ['my file #1.iso'])).toBe(
      'http://h/path/my%20file%20%231.iso',
    );
  });

  it('keeps a query at the end and drops a fragment', () => {
    expect(fileUrl('http://h/path/?t=1#x', single, ['my file #1.iso'])).toBe(
      'http://h/path/my%20file%20%231.iso?t=1',
    );
    expect(fileUrl('http://h/path/file.iso?t=1&u=2#top', single, [])).toBe(
      'http://h/path/file.iso?t=1&u=2',
    );
    expect(fileUrl('http://h/seeds#frag', multi, ['d', 'e.flac'])).toBe(
      'http://h/seeds/My%20Album/d/e.flac',
    );
    expect(fileUrl('http://h/seeds/?key=a%2Fb', multi, ['e.flac'])).toBe(
      'http://h/seeds/My%20Album/e.flac?key=a%2Fb',
    );
  });

  it("uses the torrent's own bytes for names tdl shows otherwise (not UTF-8, not NFC)", () => {
    const info = {
      name: Buffer.from('caf\xe9', 'latin1'),
      'piece length': 16384,
      pieces: Buffer.alloc(20),
      files: [
        { length: 1, path: [Buffer.from('e\u0301t\u00e9.txt')] },
        { length: 1, path: [Buffer.from('100%\xff.bin', 'latin1')] },
        {
          length: 1,
          path: [Buffer.from('\xe4', 'latin1')],
          'path.utf-8': [Buffer.from('\u00e4')],
        },
      ],
    };
    const meta = parseTorrent(encode({ info }));
    expect(meta.name).toBe('caf%E9');
    expect(meta.files[0]!.path).toEqual(['\u00e9t\u00e9.txt']);
    const urls = meta.files.map((f, i) => fileUrl('http://h/', meta, f.path, i));
    expect(urls).toEqual([
      'http://h/caf%E9/e%CC%81t%C3%A9.txt',
      'http://h/caf%E9/100%25%FF.bin',
      'http://h/caf%E9/%C3%A4',
    ]);
  });

  it("reads the torrent's own bytes however many values its file list holds", () => {
    // 90,000 entries of 23 values each: over the 2,000,000 values one decode may build, which
    // the torrent's parse never builds either (it checks such entries in place).
    const deep = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((c) => Buffer.from(c));
    const files = Array.from({ length: 90_000 }, (_, i) => {
      const path = [...deep, Buffer.from(`f${i}`)];
      return { length: 1, path, 'path.utf-8': path };
    });
    files.push({ length: 1, path: [...deep, Buffer.from('\xe9', 'latin1')], 'path.utf-8': [] });
    const info = { name: Buffer.from('top'), 'piece length': 16384, pieces: Buffer.alloc(120) };
    const meta = parseTorrent(encode({ info: { ...info, files } }));
    const last = meta.files.length - 1;
    expect(meta.files[last]!.path.at(-1)).toBe('%E9');
    expect(fileUrl('http://h/', meta, meta.files[last]!.path, last)).toBe(
      'http://h/top/a/b/c/d/e/f/g/%E9',
    );
    expect(fileUrl('http://h/', meta, meta.files[7]!.path, 7)).toBe(
      'http://h/top/a/b/c/d/e/f/g/f7',
    );
  });

  it('multi-file: base, a slash, the name and each path component encoded', () => {
    expect(fileUrl('http://h/dl', multi, ['CD 1', '01 – Intro?.flac'])).toBe(
      'http://h/dl/My%20Album/CD%201/01%20%E2%80%93%20Intro%3F.flac',
    );
    expect(fileUrl('http://h/dl/', multi, ['100% ü.txt'])).toBe(
      'http://h/dl/My%20Album/100%25%20%C3%BC.txt',
    );
    expect(fileUrl('https://archive.org/download/', { name: 'item', multiFile: true }, ['a'])).toBe(
      'https://archive.org/download/item/a',
    );
  });

  it('a base that is already percent-encoded is not encoded again', () => {
    expect(fileUrl('http://h/a%20b/', multi, ['x'])).toBe('http://h/a%20b/My%20Album/x');
  });
});

describe('pieceRanges', () => {
  it('single file: one range per piece, the last one short', () => {
    const l = layoutOf([250], 100);
    const m = { name: 'a.bin', multiFile: false, files: [{ path: ['a.bin'] }] };
    expect(pieceRanges('http://h/', m, l, 0)).toEqual([
      { fileIndex: 0, url: 'http://h/a.bin', start: 0, end: 100, pieceOffset: 0 },
    ]);
    expect(pieceRanges('http://h/x', m, l, 2)).toEqual([
      { fileIndex: 0, url: 'http://h/x', start: 200, end: 250, pieceOffset: 0 },
    ]);
    expect(pieceRanges('http://h/x', m, l, 1, 10, 20)).toEqual([
      { fileIndex: 0, url: 'http://h/x', start: 110, end: 130, pieceOffset: 10 },
    ]);
  });

  it('a piece across files: one range per file, empty files skipped', () => {
    const l = layoutOf([30, 0, 50, 40], 100);
    expect(pieceRanges('http://h', metaOf([30, 0, 50, 40]), l, 0)).toEqual([
      { fileIndex: 0, url: 'http://h/top%20dir/d/f0.bin', start: 0, end: 30, pieceOffset: 0 },
      { fileIndex: 2, url: 'http://h/top%20dir/d/f2.bin', start: 0, end: 50, pieceOffset: 30 },
      { fileIndex: 3, url: 'http://h/top%20dir/d/f3.bin', start: 0, end: 20, pieceOffset: 80 },
    ]);
    expect(pieceRanges('http://h', metaOf([30, 0, 50, 40]), l, 1)).toEqual([
      { fileIndex: 3, url: 'http://h/top%20dir/d/f3.bin', start: 20, end: 40, pieceOffset: 0 },
    ]);
  });

  it('BEP 47 padding files get no request', () => {
    const l = layoutOf([30, 70, 50], 100);
    expect(pieceRanges('http://h', metaOf([30, 70, 50], [1]), l, 0)).toEqual([
      { fileIndex: 0, url: 'http://h/top%20dir/d/f0.bin', start: 0, end: 30, pieceOffset: 0 },
    ]);
    // A piece made only of padding needs no request at all.
    const l2 = layoutOf([100, 100, 100], 100);
    expect(pieceRanges('http://h', metaOf([100, 100, 100], [1]), l2, 1)).toEqual([]);
  });

  it('ranges tile the piece exactly, minus padding, for any layout', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 200 }),
        fc.array(fc.nat({ max: 7 }), { maxLength: 3 }),
        (lengths, pl, padding) => {
          if (lengths.reduce((a, b) => a + b, 0) === 0) lengths[0] = 1;
          const l = layoutOf(lengths, pl);
          const m = metaOf(lengths, padding);
          const problems: string[] = [];
          for (let p = 0; p < l.pieceCount; p++) {
            const size = l.pieceSize(p);
            const covered = new Uint8Array(size);
            for (const r of pieceRanges('http://h', m, l, p)) {
              if (m.files[r.fileIndex]!.padding) problems.push(`padding requested in piece ${p}`);
              if (r.end <= r.start || r.end > lengths[r.fileIndex]!) problems.push(`bad range`);
              // The stream position of the range matches the piece position.
              if (l.fileOffset(r.fileIndex) + r.start !== p * pl + r.pieceOffset) {
                problems.push(`misplaced range in piece ${p}`);
              }
              for (let i = r.pieceOffset; i < r.pieceOffset + r.end - r.start; i++) {
                if (covered[i]) problems.push(`overlap in piece ${p}`);
                covered[i] = 1;
              }
            }
            // Every byte not covered belongs to a padding file.
            for (let i = 0; i < size; i++) {
              if (covered[i]) continue;
              const span = l.spans(p, i, 1)[0]!;
              if (!padding.includes(span.fileIndex)) problems.push(`gap in piece ${p} at ${i}`);
            }
          }
          expect(problems).toEqual([]);
        },
      ),
      params,
    );
  });
});

describe('runRanges', () => {
  it('merges the ranges of consecutive pieces in the same file', () => {
    const l = layoutOf([250, 100, 30], 100);
    const m = metaOf([250, 100, 30]);
    expect(runRanges('http://h', m, l, 0, 4)).toEqual([
      { fileIndex: 0, url: 'http://h/top%20dir/d/f0.bin', start: 0, end: 250, pieceOffset: 0 },
      { fileIndex: 1, url: 'http://h/top%20dir/d/f1.bin', start: 0, end: 100, pieceOffset: 250 },
      { fileIndex: 2, url: 'http://h/top%20dir/d/f2.bin', start: 0, end: 30, pieceOffset: 350 },
    ]);
    expect(runRanges('http://h', m, l, 1, 2)).toEqual([
      { fileIndex: 0, url: 'http://h/top%20dir/d/f0.bin', start: 100, end: 250, pieceOffset: 0 },
      { fileIndex: 1, url: 'http://h/top%20dir/d/f1.bin', start: 0, end: 50, pieceOffset: 150 },
    ]);
  });

  it('is the concatenation of the pieces, shifted, for any layout', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 120 }),
        fc.array(fc.nat({ max: 5 }), { maxLength: 2 }),
        fc.nat(),
        fc.nat(),
        (lengths, pl, padding, a, b) => {
          if (lengths.reduce((x, y) => x + y, 0) === 0) lengths[0] = 1;
          const l = layoutOf(lengths, pl);
          const m = metaOf(lengths, padding);
          const first = a % l.pieceCount;
          const count = 1 + (b % (l.pieceCount - first));
          // Byte map of the run: stream position -> (file, offset), from each piece alone.
          const want = new Map<number, string>();
          for (let p = first; p < first + count; p++) {
            for (const r of pieceRanges('http://h', m, l, p)) {
              for (let i = 0; i < r.end - r.start; i++) {
                want.set((p - first) * pl + r.pieceOffset + i, `${r.fileIndex}:${r.start + i}`);
              }
            }
          }
          const got = new Map<number, string>();
          const runs = runRanges('http://h', m, l, first, count);
          for (const r of runs) {
            for (let i = 0; i < r.end - r.start; i++) {
              got.set(r.pieceOffset + i, `${r.fileIndex}:${r.start + i}`);
            }
          }
          expect(got).toEqual(want);
          // Merged: no two neighbours continue each other.
          for (let i = 1; i < runs.length; i++) {
            const [p, q] = [runs[i - 1]!, runs[i]!];
            expect(p.fileIndex === q.fileIndex && p.end === q.start).toBe(false);
          }
        },
      ),
      params,
    );
  });
});
