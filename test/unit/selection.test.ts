import { open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { Layout } from '../../src/storage/layout.js';
import { PartsFile, partsInfoHash } from '../../src/storage/parts.js';
import {
  compileGlob,
  MAX_SELECT_CHARS,
  parseRanges,
  resolveSelection,
  selectedBytes,
  selectionFromIndexes,
  selectsEveryFile,
  wantedPieces,
} from '../../src/storage/selection.js';
import { tempDir } from '../helpers/cli.js';

const seed = Number(process.env['FUZZ_SEED'] ?? 42);
const numRuns = Number(process.env['FUZZ_RUNS'] ?? 1000);

const files = [
  { path: ['a.txt'] },
  { path: ['.pad', '100'], padding: true },
  { path: ['docs', 'b.md'] },
  { path: ['docs', 'deep', 'c.txt'] },
  { path: ['skip.txt'] },
];

describe('selectsEveryFile', () => {
  it('is true when every file but the padding ones is selected', () => {
    const padding = (i: number) => i === 1;
    expect(selectsEveryFile(Uint8Array.from([1, 0, 1]), padding)).toBe(true);
    expect(selectsEveryFile(Uint8Array.from([1, 1, 1]), padding)).toBe(true);
    expect(selectsEveryFile(Uint8Array.from([1, 0, 0]), padding)).toBe(false);
    expect(selectsEveryFile(Uint8Array.from([0, 0, 1]), () => false)).toBe(false);
  });
});

describe('parseRanges', () => {
  it('reads numbers and ranges', () => {
    expect(parseRanges('1,3-5', 5)).toEqual([
      [1, 1],
      [3, 5],
    ]);
    expect(parseRanges(' 2 - 2 ', 2)).toEqual([[2, 2]]);
  });

  it('refuses malformed lists and numbers beyond the files', () => {
    for (const bad of ['', ',', '0', '3-1', '1,,2', 'a', '1-', '-1', '1.5', '99999999999']) {
      expect(() => parseRanges(bad, 5), bad).toThrow(UsageError);
    }
    expect(() => parseRanges('6', 5)).toThrow(/file 6 does not exist/);
    expect(() => parseRanges('99999999999', 5)).toThrow(/file 99999999999 does not exist/);
    expect(() => parseRanges('0', 5)).toThrow(
      '--select: no file 0: files are numbered from 1 (as tdl info lists them)',
    );
    expect(() => parseRanges('1,4-2', 5)).toThrow('--select: range 4-2 goes down; write 2-4');
  });

  it('takes every other file of 100,000 by number; refuses a list past the cap', () => {
    const odd = Array.from({ length: 50_000 }, (_, i) => 2 * i + 1).join(',');
    expect(odd.length).toBeGreaterThan(100_000);
    expect(parseRanges(odd, 100_000)).toHaveLength(50_000);
    expect(() => parseRanges('1,'.repeat(MAX_SELECT_CHARS / 2) + '1', 1)).toThrow(
      `--select: longer than ${MAX_SELECT_CHARS} characters`,
    );
  });

  it('never throws anything but a UsageError, and stays in range', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 0, max: 50 }), (s, n) => {
        try {
          for (const [a, b] of parseRanges(s, n)) {
            expect(a).toBeGreaterThanOrEqual(1);
            expect(b).toBeLessThanOrEqual(n);
            expect(a).toBeLessThanOrEqual(b);
          }
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
        }
      }),
      { seed, numRuns },
    );
  });
});

describe('compileGlob', () => {
  it('matches a last component without /, a whole path with /', () => {
    expect(compileGlob('*.txt')('docs/deep/c.txt')).toBe(true);
    expect(compileGlob('docs/*.txt')('docs/deep/c.txt')).toBe(false);
    expect(compileGlob('docs/**/*.txt')('docs/deep/c.txt')).toBe(true);
    expect(compileGlob('docs/**/*.md')('docs/b.md')).toBe(true);
    expect(compileGlob('docs/**')('docs/deep/c.txt')).toBe(true);
    expect(compileGlob('?.txt')('a.txt')).toBe(true);
    expect(compileGlob('?.txt')('ab.txt')).toBe(false);
    // Everything else is literal, regex syntax included.
    expect(compileGlob('a.(t)+')('a.(t)+')).toBe(true);
    expect(compileGlob('a.txt')('abtxt')).toBe(false);
    expect(() => compileGlob('')).toThrow(UsageError);
  });
});

describe('resolveSelection', () => {
  it('is null without options, and numbers files without padding', () => {
    expect(resolveSelection(files, 'top', true, {})).toBeNull();
    expect([...resolveSelection(files, 'top', true, { select: '2' })!]).toEqual([0, 0, 1, 0, 0]);
    expect([...resolveSelection(files, 'top', true, { select: '1,3-4' })!]).toEqual([
      1, 0, 0, 1, 1,
    ]);
  });

  it('tells of each --include or --exclude that matches no file, a folder name with a hint', () => {
    const told: string[] = [];
    const sel = resolveSelection(
      files,
      'top',
      true,
      { include: ['*.md', '*.txt', '*.flac'], exclude: ['docs', 'deep/**', 'skip.txt'] },
      (w) => told.push(w),
    );
    expect([...sel!]).toEqual([1, 0, 1, 1, 0]);
    expect(told).toEqual([
      '--include "*.flac" matches no file of the torrent',
      '--exclude "docs" matches no file of the torrent (a pattern without / matches file names: for the folder, "docs/**")',
      '--exclude "deep/**" matches no file of the torrent',
    ]);
  });

  it('hints at a folder written with a trailing / and at a path written from the root', () => {
    const told: string[] = [];
    resolveSelection(files, 'top', true, { include: ['*.md', 'docs/', '/a.txt'] }, (w) =>
      told.push(w),
    );
    expect(told).toEqual([
      '--include "docs/" matches no file of the torrent (patterns match files: for the files of a folder, "docs/**")',
      '--include "/a.txt" matches no file of the torrent (patterns match paths inside the torrent, with no leading /: "a.txt")',
    ]);
  });

  it('unites --select and --include, then removes --exclude', () => {
    const sel = resolveSelection(files, 'top', true, {
      select: '1',
      include: ['docs/**'],
      exclude: ['c.txt'],
    });
    expect([...sel!]).toEqual([1, 0, 1, 0, 0]);
    expect([...resolveSelection(files, 'top', true, { exclude: ['skip*'] })!]).toEqual([
      1, 0, 1, 1, 0,
    ]);
    expect(() => resolveSelection(files, 'top', true, { exclude: ['*'] })).toThrow(/no file/);
    // A pattern written as `tdl info` shows the path, under the torrent's name: said how to fix.
    expect(() => resolveSelection(files, 'top', true, { include: ['top/docs/*'] })).toThrow(
      'leaves no file (patterns match paths inside the torrent, without its name: "docs/*", not "top/docs/*")',
    );
  });

  it('refuses a selection of symbolic links alone (they are made with the whole torrent)', () => {
    const withLink = [...files, { path: ['link'], symlink: ['a.txt'] }];
    expect(() => resolveSelection(withLink, 'top', true, { select: '5' })).toThrow(
      /only symbolic links/,
    );
    // With a file of data beside it, the link is taken too.
    expect([...resolveSelection(withLink, 'top', true, { select: '1,5' })!]).toEqual([
      1, 0, 0, 0, 0, 1,
    ]);
  });

  it('matches a single-file torrent by its name', () => {
    const one = [{ path: ['x.iso'] }];
    expect([...resolveSelection(one, 'x.iso', false, { include: ['*.iso'] })!]).toEqual([1]);
    expect(() => resolveSelection(one, 'x.iso', false, { exclude: ['x.*'] })).toThrow(UsageError);
  });
});

describe("selectionFromIndexes (a magnet link's so=)", () => {
  it('counts from 0 over the whole list, padding included, and never selects padding', () => {
    expect([...selectionFromIndexes(files, [0, 2]).selected]).toEqual([1, 0, 1, 0, 0]);
    // Index 1 is the padding file: counted, not selected.
    expect([...selectionFromIndexes(files, [1, 3]).selected]).toEqual([0, 0, 0, 1, 0]);
  });

  it('reports indexes past the list, and refuses a selection of nothing', () => {
    const r = selectionFromIndexes(files, [4, 5, 99]);
    expect([...r.selected]).toEqual([0, 0, 0, 0, 1]);
    expect(r.beyond).toEqual([5, 99]);
    expect(() => selectionFromIndexes(files, [1])).toThrow(UsageError);
    expect(() => selectionFromIndexes(files, [7])).toThrow(/selects no file/);
  });
});

describe('wantedPieces', () => {
  it('takes every piece touching a selected file, boundary pieces included', () => {
    // Files of 10, 0, 25, 5 bytes; pieces of 8: file 2 spans bytes 10..34 -> pieces 1..4.
    const lay = new Layout(
      [
        { offset: 0, length: 10 },
        { offset: 10, length: 0 },
        { offset: 10, length: 25 },
        { offset: 35, length: 5 },
      ],
      8,
      40,
    );
    const w = wantedPieces(lay, Uint8Array.from([0, 1, 1, 0]));
    expect([0, 1, 2, 3, 4].map((p) => w.has(p))).toEqual([false, true, true, true, true]);
    expect(wantedPieces(lay, null).isComplete()).toBe(true);
    expect(selectedBytes([{ length: 10 }, { length: 5, padding: true }], null)).toBe(10);
  });
});

describe('PartsFile', () => {
  let dir = '';
  let cleanup = async () => {};
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('tdl-parts-'));
  });
  afterEach(() => cleanup());

  const layout = new Layout([{ offset: 0, length: 100 }], 16, 100);
  const hash = Buffer.alloc(20, 7);
  const piece = (i: number) => Buffer.alloc(layout.pieceSize(i), i + 1);

  it('stores pieces once, reads them back after a reopen, and marks its torrent', async () => {
    const file = path.join(dir, 'x.tdl-parts');
    const pf = await PartsFile.open(file, layout, hash, true);
    await pf.write(3, piece(3));
    await pf.write(6, piece(6));
    await pf.write(3, piece(3));
    await pf.close();
    expect(await partsInfoHash(file)).toEqual(hash);
    const again = await PartsFile.open(file, layout, hash, false);
    expect(again.pieces).toEqual([3, 6]);
    const buf = Buffer.alloc(10);
    await again.read(6, 1, 3, buf, 2);
    expect([...buf.subarray(2, 5)]).toEqual([7, 7, 7]);
    await again.close();
    // Another torrent's file is started afresh.
    const other = await PartsFile.open(file, layout, Buffer.alloc(20, 1), true);
    expect(other.size).toBe(0);
    await other.write(1, piece(1));
    await other.close();
    const reread = await PartsFile.open(file, layout, Buffer.alloc(20, 1), false);
    expect(reread.pieces).toEqual([1]);
    await reread.close();
  });

  it('a forgotten (bad) record is not read, and the next copy of its piece goes over it', async () => {
    const file = path.join(dir, 'x.tdl-parts');
    const pf = await PartsFile.open(file, layout, hash, true);
    await pf.write(3, piece(3));
    await pf.write(6, piece(6));
    await pf.close();
    const size = (await readFile(file)).length;
    // A byte of piece 3's copy goes bad (after the 28-byte header and its record's 8).
    const bad = await readFile(file);
    bad[28 + 8 + 5]! ^= 0xff;
    await writeFile(file, bad);
    const again = await PartsFile.open(file, layout, hash, true);
    again.forget(3);
    expect(again.has(3)).toBe(false);
    expect(again.pieces).toEqual([6]);
    await again.write(3, piece(3));
    // A good record written again stays where it is, too.
    await again.write(6, piece(6));
    await again.close();
    expect((await readFile(file)).length).toBe(size);
    const back = await PartsFile.open(file, layout, hash, false);
    expect(back.pieces).toEqual([3, 6]);
    const b = Buffer.alloc(16);
    await back.read(3, 0, 16, b, 0);
    expect(b.equals(piece(3))).toBe(true);
    await back.close();
  });

  it('cut at every byte: keeps the whole records before the cut, and appends after them', async () => {
    const file = path.join(dir, 'x.tdl-parts');
    const pf = await PartsFile.open(file, layout, hash, true);
    for (const i of [0, 6, 2]) await pf.write(i, piece(i));
    await pf.close();
    const full = await readFile(file);
    // Records: piece 0 (16 bytes), piece 6 (the last: 4 bytes), piece 2 (16), after 28 bytes.
    const ends = [28, 28 + 24, 28 + 24 + 12, 28 + 24 + 12 + 24];
    for (let cut = 0; cut <= full.length; cut++) {
      await writeFile(file, full.subarray(0, cut));
      const p = await PartsFile.open(file, layout, hash, true);
      const whole = ends.filter((e) => e <= cut).length - 1;
      expect(p.size, `cut ${cut}`).toBe(Math.max(0, whole));
      await p.write(5, piece(5));
      await p.close();
      const back = await PartsFile.open(file, layout, hash, false);
      expect(back.has(5)).toBe(true);
      const b = Buffer.alloc(16);
      await back.read(5, 0, 16, b, 0);
      expect(b.equals(piece(5))).toBe(true);
      await back.close();
    }
  });

  it('random bytes never make it throw in read mode, nor index a bad record', async () => {
    const file = path.join(dir, 'x.tdl-parts');
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (junk) => {
        const head = Buffer.concat([Buffer.from('TDLPART1'), hash, Buffer.from(junk)]);
        await writeFile(file, head);
        const p = await PartsFile.open(file, layout, hash, false);
        for (const i of p.pieces) expect(i).toBeLessThan(layout.pieceCount);
        await p.close();
      }),
      { seed, numRuns: Math.min(numRuns, 300) },
    );
  });

  it('refuses to write over a file that is not one', async () => {
    const file = path.join(dir, 'x.tdl-parts');
    await writeFile(file, 'precious data, not ours');
    await expect(PartsFile.open(file, layout, hash, true)).rejects.toThrow(/not a tdl parts file/);
    await rm(file);
    const h = await open(file, 'w');
    await h.close();
    await truncate(file, 0);
    const empty = await PartsFile.open(file, layout, hash, true);
    expect(empty.size).toBe(0);
    await empty.close();
  });
});
