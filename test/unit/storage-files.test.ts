/**
 * Storage with many files and a small pool of open files, BEP 47 padding files, and the
 * positional block reads that serve other peers. Metainfo-shaped objects are built by hand.
 */
import { existsSync } from 'node:fs';
import {
  mkdir,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskError } from '../../src/errors.js';
import { startupCheck } from '../../src/storage/check.js';
import { hashPieces } from '../../src/storage/hash-pieces.js';
import { ResumeWriter } from '../../src/storage/checkpoint.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { syncFileSystems, syncfsFlushes, syncfsSupported } from '../../src/storage/fs-util.js';
import { resumePath } from '../../src/storage/names.js';
import { outputWrites, planOutput } from '../../src/storage/output.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { tempDir } from '../helpers/cli.js';
import { handTorrent as torrent, type HandFile } from '../helpers/torrent.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-files-'));
});
afterEach(async () => {
  await cleanup();
});

/** n small files of `size` bytes in nested folders. */
function manyFiles(n: number, size: number): HandFile[] {
  return Array.from({ length: n }, (_, i) => ({
    path: [`d${i % 7}`, `e${i % 3}`, `f${i}.bin`],
    length: size + (i % 5),
  }));
}

describe('many files through a small pool', () => {
  it('downloads, checkpoints, finalizes and re-checks 300 files with at most 8 open', async () => {
    const t = torrent('many', 4096, manyFiles(300, 700));
    const plan = await planOutput(t.meta, dir);
    const s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 8 });
    const w = new ResumeWriter(resumePath(plan), t.meta, s, new Bitfield(t.layout.pieceCount));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    // Out of order, concurrently: the pool must keep every write correct.
    const order = t.pieces.map((_, i) => i).reverse();
    await Promise.all(
      order.map(async (i) => {
        await s.writePiece(i, t.pieces[i]!);
        w.markWritten(i);
      }),
    );
    await w.checkpoint();
    expect(s.openFiles.peak).toBeLessThanOrEqual(8);
    const r = await hashPieces({
      storage: s,
      layout: t.layout,
      pieceHashes: t.meta.pieceHashes,
      pieces: order.slice().reverse(),
    });
    expect(r.valid.count).toBe(t.layout.pieceCount);
    await s.checkIntact();
    await s.finalize();
    await w.remove();
    // Blocks are still served after the files got their final names.
    const b = await s.readBlock(5, 100, 1000);
    expect(b.equals(t.pieces[5]!.subarray(100, 1100))).toBe(true);
    expect(s.openFiles.peak).toBeLessThanOrEqual(8);
    await s.close();
    let off = 0;
    for (const f of t.meta.files) {
      const got = await readFile(path.join(plan.root, ...f.path));
      expect(got.equals(t.data.subarray(off, off + f.length))).toBe(true);
      off += f.length;
    }
  });

  it('a resumed start-up check trusts the checkpoint without opening a file', async () => {
    const t = torrent('resume', 4096, manyFiles(200, 500));
    const plan = await planOutput(t.meta, dir);
    let s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 16 });
    const w = new ResumeWriter(resumePath(plan), t.meta, s, new Bitfield(t.layout.pieceCount));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    const half = Math.floor(t.layout.pieceCount / 2);
    for (let i = 0; i < half; i++) {
      await s.writePiece(i, t.pieces[i]!);
      w.markWritten(i);
    }
    await w.checkpoint();
    // Each file written was opened once, and synced once, whatever the number of pieces.
    const written = new Set<number>();
    for (let i = 0; i < half; i++) for (const sp of t.layout.spans(i)) written.add(sp.fileIndex);
    expect(s.openFiles.opens).toBe(written.size);
    await w.close();
    await s.close();

    s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 16 });
    const c = await startupCheck({
      storage: s,
      layout: t.layout,
      torrent: t.meta,
      resumeFile: resumePath(plan),
    });
    expect(c.resume).toBe('used');
    expect(c.have.count).toBe(half);
    expect(c.hashedPieces).toBe(0);
    expect(s.openFiles.opens).toBe(0);
    await s.close();
  });

  it('read mode over final names opens only files that exist, and never creates one', async () => {
    const t = torrent('ro', 4096, manyFiles(40, 300));
    const plan = await planOutput(t.meta, dir);
    const w = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 4 });
    for (let i = 0; i < 2; i++) await w.writePiece(i, t.pieces[i]!);
    await w.close();
    const r = await DiskStorage.open(plan, t.layout, { mode: 'read', maxOpenFiles: 4 });
    const existing = r.files.filter((f) => f.existed).length;
    const all = await r.readPieces(0, t.layout.pieceCount - 1);
    expect(all.subarray(0, 8192).equals(t.data.subarray(0, 8192))).toBe(true);
    expect(r.openFiles.opens).toBe(existing);
    await r.close();
    const names = (await readdir(plan.root, { recursive: true })).filter((n) =>
      n.endsWith('.bin.part'),
    );
    expect(names.length).toBe(existing);
  });
});

describe('a pool of two handles under concurrent use', () => {
  it('keeps every write and read right while handles are evicted (seeded)', async () => {
    const t = torrent('churn', 2048, manyFiles(60, 300));
    const plan = await planOutput(t.meta, dir);
    const s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 2 });
    // A seeded shuffle of the pieces, written all at once, with block reads of pieces already
    // written going on at the same time.
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const order = t.pieces.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const done: number[] = [];
    const reads: Promise<void>[] = [];
    await Promise.all(
      order.map(async (p) => {
        await s.writePiece(p, t.pieces[p]!);
        done.push(p);
        const q = done[rand(done.length)]!;
        const size = t.pieces[q]!.length;
        const begin = rand(size);
        const length = 1 + rand(size - begin);
        reads.push(
          s.readBlock(q, begin, length).then((b) => {
            expect(b.equals(t.pieces[q]!.subarray(begin, begin + length))).toBe(true);
          }),
        );
      }),
    );
    await Promise.all(reads);
    expect(s.openFiles.peak).toBeLessThanOrEqual(2);
    const all = await s.readPieces(0, t.layout.pieceCount - 1);
    expect(all.equals(t.data)).toBe(true);
    await s.close();
  });
});

describe('BEP 47 padding files', () => {
  const spec: HandFile[] = [
    { path: ['a'], length: 1000 },
    { path: ['.pad', '3096'], length: 3096, padding: true },
    { path: ['b'], length: 5000 },
    { path: ['.pad', '3192'], length: 3192, padding: true },
    { path: ['c'], length: 10 },
  ];

  it('are never created, read as zeros, and their pieces verify', async () => {
    const t = torrent('pad', 4096, spec);
    const plan = await planOutput(t.meta, dir);
    expect(plan.dirs.some((d) => d.endsWith('.pad'))).toBe(false);
    const s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 4 });
    expect(s.files.filter((f) => f.padding).map((f) => f.current)).toEqual([null, null]);
    for (let i = 0; i < t.layout.pieceCount; i++) await s.writePiece(i, t.pieces[i]!);
    const r = await hashPieces({
      storage: s,
      layout: t.layout,
      pieceHashes: t.meta.pieceHashes,
      pieces: [0, 1, 2, 3],
    });
    expect(r.valid.count).toBe(4);
    // A block lying across a/padding reads zeros for the padding.
    const b = await s.readBlock(0, 900, 300);
    expect(b.equals(t.data.subarray(900, 1200))).toBe(true);
    expect(b.subarray(100).every((x) => x === 0)).toBe(true);
    await s.checkIntact();
    await s.finalize();
    await s.close();
    expect(existsSync(path.join(plan.root, '.pad'))).toBe(false);
    expect((await readdir(plan.root)).sort()).toEqual(['a', 'b', 'c']);
    expect((await stat(path.join(plan.root, 'b'))).size).toBe(5000);
  });

  it('are neither trusted nor hashed on their own at start-up', async () => {
    const t = torrent('pad2', 4096, spec);
    const plan = await planOutput(t.meta, dir);
    let s = await DiskStorage.open(plan, t.layout);
    const w = new ResumeWriter(resumePath(plan), t.meta, s, new Bitfield(t.layout.pieceCount));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    for (const i of [0, 2]) {
      await s.writePiece(i, t.pieces[i]!);
      w.markWritten(i);
    }
    await w.checkpoint();
    await w.close();
    await s.close();
    s = await DiskStorage.open(plan, t.layout);
    const c = await startupCheck({
      storage: s,
      layout: t.layout,
      torrent: t.meta,
      resumeFile: resumePath(plan),
    });
    await s.close();
    // Pieces 0 (a + padding) and 2 (b + padding) are trusted from the checkpoint.
    expect([0, 1, 2, 3].map((i) => c.have.has(i))).toEqual([true, false, true, false]);
    expect(c.hashedPieces).toBe(0);
  });
});

describe('readBlock', () => {
  it('reads a block across files and refuses a range outside the piece with a DiskError', async () => {
    const t = torrent('blk', 4096, [
      { path: ['x'], length: 3000 },
      { path: ['y'], length: 3000 },
    ]);
    const plan = await planOutput(t.meta, dir);
    const s = await DiskStorage.open(plan, t.layout);
    await s.writePiece(0, t.pieces[0]!);
    await s.writePiece(1, t.pieces[1]!);
    expect((await s.readBlock(0, 2900, 200)).equals(t.data.subarray(2900, 3100))).toBe(true);
    expect((await s.readBlock(1, 0, 1904)).equals(t.pieces[1]!)).toBe(true);
    await expect(s.readBlock(1, 1000, 1000)).rejects.toBeInstanceOf(DiskError);
    await expect(s.readBlock(9, 0, 1)).rejects.toBeInstanceOf(DiskError);
    await s.close();
    await expect(s.readBlock(0, 0, 1)).rejects.toBeInstanceOf(DiskError);
  });

  it('serves existing complete data in read mode, under final names', async () => {
    const t = torrent('seed', 4096, [
      { path: ['x'], length: 3000 },
      { path: ['y'], length: 3000 },
    ]);
    const plan = await planOutput(t.meta, dir);
    const w = await DiskStorage.open(plan, t.layout);
    await w.writePiece(0, t.pieces[0]!);
    await w.writePiece(1, t.pieces[1]!);
    await w.finalize();
    await w.close();
    const r = await DiskStorage.open(plan, t.layout, { mode: 'read' });
    expect(r.files.map((f) => f.current)).toEqual(plan.files.map((f) => f.path));
    expect((await r.readBlock(0, 0, 4096)).equals(t.pieces[0]!)).toBe(true);
    await r.close();
  });
});

describe('syncs in batches', () => {
  it('syncfs is used only on Linux 5.8 or later', () => {
    expect(syncfsSupported('linux', '5.8.0')).toBe(true);
    expect(syncfsSupported('linux', '6.1.0-18-amd64')).toBe(true);
    expect(syncfsSupported('linux', '5.7.19')).toBe(false);
    expect(syncfsSupported('linux', '4.19.0')).toBe(false);
    expect(syncfsSupported('linux', 'weird')).toBe(false);
    expect(syncfsSupported('darwin', '23.1.0')).toBe(false);
    expect(syncfsSupported('win32', '10.0.19045')).toBe(false);
  });

  it('syncfs vouches only for local file systems: FUSE and network ones are synced file by file', () => {
    const fsType = (type: number) => () => ({ type });
    expect(syncfsFlushes('/x', fsType(0xef53))).toBe(true); // ext4
    expect(syncfsFlushes('/x', fsType(0x58465342))).toBe(true); // xfs
    expect(syncfsFlushes('/x', fsType(0x65735546))).toBe(false); // FUSE
    expect(syncfsFlushes('/x', fsType(0x6969))).toBe(false); // NFS
    const missing = () => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    expect(syncfsFlushes('/x', missing)).toBe(null);
  });

  it('syncFileSystems says whether it synced (nothing to do counts as done)', async () => {
    expect(await syncFileSystems([])).toBe(true);
    expect(await syncFileSystems([dir])).toBe(syncfsSupported());
  });

  it('a checkpoint after many files syncs them in one batch and stamps them without a lookup', async () => {
    const t = torrent('batch', 4096, manyFiles(60, 300));
    const plan = await planOutput(t.meta, dir);
    const s = await DiskStorage.open(plan, t.layout, { maxOpenFiles: 4 });
    const w = new ResumeWriter(resumePath(plan), t.meta, s, new Bitfield(t.layout.pieceCount));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    for (let i = 0; i < t.layout.pieceCount; i++) {
      await s.writePiece(i, t.pieces[i]!);
      w.markWritten(i);
    }
    const opens = s.openFiles.opens;
    await w.checkpoint();
    // Stamps came from the handles as files left the pool, and the sync from one syncfs: the
    // checkpoint opened nothing again.
    expect(s.openFiles.opens).toBe(opens);
    const stamps = await s.stamps();
    for (let i = 0; i < 60; i++) {
      const st = await stat(s.files[i]!.partPath, { bigint: true });
      expect(stamps[i]).toEqual({ size: Number(st.size), mtimeNs: st.mtimeNs, ino: st.ino });
    }
    await w.close();
    await s.close();
  });
});

describe('outputWrites', () => {
  const root = '/o/multi';
  const t = {
    multiFile: true,
    files: [
      { path: ['a.bin'] },
      { path: ['.pad', '0'], padding: true },
      { path: ['sub', 'b.bin'] },
    ],
  };

  it('names the root, its side files, and (given the torrent) its files, .parts and folders', () => {
    for (const p of ['', '.part', '.tdl-resume', '.tdl-parts', '.tdl-torrent', '.tdl-lock']) {
      expect(outputWrites(root, `${root}${p}`), p).toBe(true);
    }
    for (const p of ['a.bin', 'a.bin.part', 'sub', 'sub/b.bin', 'sub/b.bin.part']) {
      expect(outputWrites(root, `${root}/${p}`, t), p).toBe(true);
      // Without the torrent, only the root and what sits beside it are known.
      expect(outputWrites(root, `${root}/${p}`), p).toBe(false);
    }
  });

  it('leaves out what the download never writes', () => {
    for (const p of ['/o/multi/copy.torrent', '/o/multi/.pad/0', '/o/multi2', '/o/other.bin']) {
      expect(outputWrites(root, p, t), p).toBe(false);
    }
  });
});

describe('finishing', () => {
  it('a rename that fails puts back those made: the output is all working names, or all final', async () => {
    const t = torrent('many', 4096, manyFiles(40, 700));
    const plan = await planOutput(t.meta, dir);
    const s = await DiskStorage.open(plan, t.layout, {});
    for (let i = 0; i < t.pieces.length; i++) await s.writePiece(i, t.pieces[i]!);
    // A folder made where the last file goes, once its data was written.
    const last = path.join(dir, 'many', 'd4', 'e0', 'f39.bin');
    await mkdir(last);
    await expect(s.finalize()).rejects.toThrow(/cannot rename .*f39\.bin\.part to .*f39\.bin/);
    const names = await readdir(path.join(dir, 'many'), { recursive: true });
    const files = names.filter((n) => n.endsWith('.bin') || n.endsWith('.part'));
    expect(files.filter((n) => n.endsWith('.bin'))).toEqual([path.join('d4', 'e0', 'f39.bin')]);
    expect(files.filter((n) => n.endsWith('.part'))).toHaveLength(40);
    // With the folder gone, finishing again makes every final name.
    await rm(last, { recursive: true });
    await s.finalize();
    const after = await readdir(path.join(dir, 'many'), { recursive: true });
    expect(after.filter((n) => n.endsWith('.part'))).toHaveLength(0);
    expect(after.filter((n) => n.endsWith('.bin'))).toHaveLength(40);
    await s.close();
  });
});

describe("what is already in the torrent's folders", () => {
  /** Files of two folders, taking turns (a torrent need not be sorted). */
  const interleaved = (): HandFile[] => [
    { path: ['d0', 'a.bin'], length: 10 },
    { path: ['d1', 'b.bin'], length: 10 },
    { path: ['d0', 'c.bin'], length: 10 },
    { path: ['d1', 'd.bin'], length: 10 },
  ];

  it('a link or a folder in a file’s place is found from the listings, whatever the order', async () => {
    const t = torrent('turns', 16, interleaved());
    const root = path.join(dir, 'turns');
    await mkdir(path.join(root, 'd0'), { recursive: true });
    await mkdir(path.join(root, 'd1'));
    for (const f of ['a.bin', 'b.bin']) {
      await writeFile(path.join(root, f === 'a.bin' ? 'd0' : 'd1', f), Buffer.alloc(10));
    }
    // Regular files already there: fine either way.
    await expect(planOutput(t.meta, dir)).resolves.toMatchObject({ root });
    await expect(planOutput(t.meta, dir, 'read')).resolves.toMatchObject({ root });
    // A folder where the last file goes: refused to write, left to verify to report.
    await mkdir(path.join(root, 'd1', 'd.bin'));
    await expect(planOutput(t.meta, dir)).rejects.toThrow(/d1\/d\.bin exists and is a directory/);
    await expect(planOutput(t.meta, dir, 'read')).resolves.toMatchObject({ root });
    // A link where a file of the first folder goes, listed after a file of the second.
    await symlink(path.join(dir, 'elsewhere'), path.join(root, 'd0', 'c.bin'));
    await expect(planOutput(t.meta, dir)).rejects.toThrow(/symbolic link .*d0\/c\.bin/);
    await expect(planOutput(t.meta, dir, 'read')).rejects.toThrow(
      /d0\/c\.bin: it is a symbolic link/,
    );
    expect(existsSync(path.join(dir, 'elsewhere'))).toBe(false);
  });
});

describe('files changed while they are read (tdl verify)', () => {
  it('names the first file removed, replaced, resized or modified since its stamp', async () => {
    const t = torrent('changing', 4096, manyFiles(4, 5000));
    const plan = await planOutput(t.meta, dir);
    const w = await DiskStorage.open(plan, t.layout);
    for (let i = 0; i < t.layout.pieceCount; i++) await w.writePiece(i, t.pieces[i]!);
    await w.close();
    const files = (i: number) => `${path.join(plan.root, ...t.meta.files[i]!.path)}.part`;
    const later = Date.now() / 1000 + 100;
    const changes: [string, (f: string) => Promise<void>, string][] = [
      ['removed', (f) => rm(f), 'was removed'],
      [
        'replaced',
        async (f) => {
          await writeFile(`${f}.new`, await readFile(f));
          await rename(`${f}.new`, f);
        },
        'was replaced',
      ],
      ['cut', (f) => truncate(f, 100), 'changed size (5002 bytes, now 100)'],
      ['modified', (f) => utimes(f, later, later), 'was modified'],
    ];
    for (const [what, change, said] of changes) {
      const r = await DiskStorage.open(plan, t.layout, { mode: 'read' });
      const before = await r.stamps();
      expect(await r.firstChange(before), what).toBeNull();
      // Read through its handle: a removed file still reads.
      await r.readPieces(0, t.layout.pieceCount - 1);
      await change(files(2));
      expect(await r.firstChange(before), what).toBe(`${files(2)} ${said}`);
      await r.close();
      // Put back for the next change.
      const back = await DiskStorage.open(plan, t.layout);
      for (let i = 0; i < t.layout.pieceCount; i++) await back.writePiece(i, t.pieces[i]!);
      await back.close();
    }
  });
});
