/**
 * Storage below the CLI: working names, opening in write and read mode, the move to `.part`
 * before the first write, finalize, the checks for files changed under us, the output plan's
 * recognition of a torrent's own folder, and the checkpoint writer's file and journal.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashPieces, isAllZero } from '../../src/storage/hash-pieces.js';
import { ResumeWriter } from '../../src/storage/checkpoint.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { replaceFile } from '../../src/storage/fs-util.js';
import { OutputChangedError } from '../../src/storage/stamps.js';
import { Layout } from '../../src/storage/layout.js';
import { partPaths, resumePath, withSuffix } from '../../src/storage/names.js';
import { planOutput, type OutputPlan } from '../../src/storage/output.js';
import { decodeResume, stampAt } from '../../src/storage/resume.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { tempDir } from '../helpers/cli.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-storage-'));
});
afterEach(async () => {
  await cleanup();
});

const PL = 16;

/** Two files, 20 and 30 bytes, 16-byte pieces: piece 1 crosses the boundary. */
function twoFiles(root: string): { plan: OutputPlan; layout: Layout; data: Buffer } {
  const plan: OutputPlan = {
    root,
    parent: path.dirname(root),
    files: [
      { path: path.join(root, 'a'), length: 20, offset: 0 },
      { path: path.join(root, 'b'), length: 30, offset: 20 },
    ],
    dirs: [root],
  };
  const layout = new Layout(plan.files, PL, 50);
  return { plan, layout, data: randomBytesSeeded(50, 'two') };
}

const piece = (data: Buffer, i: number) =>
  data.subarray(i * PL, Math.min(data.length, (i + 1) * PL));

/** The SHA-1 of each of twoFiles' four pieces, as a torrent's `pieces`. */
const pieceHashes = (data: Buffer) =>
  Buffer.concat([0, 1, 2, 3].map((i) => createHash('sha1').update(piece(data, i)).digest()));

describe('working names', () => {
  it('appends .part, stepping around names the torrent itself uses', () => {
    const plan: OutputPlan = {
      root: '/o',
      parent: '/',
      files: ['/o/x', '/o/x.part', '/o/y'].map((p) => ({ path: p, length: 1, offset: 0 })),
      dirs: ['/o'],
    };
    const parts = partPaths(plan);
    expect(parts[2]).toBe('/o/y.part');
    expect(new Set([...parts, ...plan.files.map((f) => f.path)]).size).toBe(6);
    expect(resumePath(plan)).toBe('/o.tdl-resume');
  });

  it('keeps a long name under 255 bytes, and unique', () => {
    const long = `/d/${'é'.repeat(127)}`; // 254 bytes
    const a = withSuffix(long, '.part');
    const b = withSuffix(`/d/${'é'.repeat(126)}x`, '.part');
    expect(Buffer.byteLength(path.basename(a))).toBeLessThanOrEqual(255);
    expect(a.endsWith('.part')).toBe(true);
    expect(a).not.toBe(b);
    expect(withSuffix('/d/short', '.part')).toBe('/d/short.part');
  });

  it('replaces a file of a 255-byte name through a temporary file that fits too', async () => {
    const p = path.join(dir, `${'é'.repeat(127)}x`);
    await writeFile(p, 'old');
    await replaceFile(p, Buffer.from('new'));
    expect(await readFile(p, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual([path.basename(p)]);
  });
});

describe('DiskStorage', () => {
  it('creates files under their working names when first written, and finalizes them', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    const s = await DiskStorage.open(plan, layout);
    expect(s.files.map((f) => path.basename(f.current!))).toEqual(['a.part', 'b.part']);
    expect(s.files.every((f) => !f.existed)).toBe(true);
    expect(existsSync(path.join(dir, 't', 'b.part'))).toBe(false);
    await s.writePiece(3, piece(data, 3));
    expect((await stat(path.join(dir, 't', 'b.part'))).size).toBe(30);
    expect(existsSync(path.join(dir, 't', 'a.part'))).toBe(false);
    for (let i = 0; i < layout.pieceCount; i++) await s.writePiece(i, piece(data, i));
    await s.checkIntact();
    await s.finalize();
    await s.close();
    expect(
      Buffer.concat([
        await readFile(plan.files[0]!.path),
        await readFile(plan.files[1]!.path),
      ]).equals(data),
    ).toBe(true);
    expect(existsSync(path.join(dir, 't', 'a.part'))).toBe(false);
  });

  it('uses a file found under its final name in place, moving it to .part only when written', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    await mkdir(plan.root);
    await writeFile(plan.files[0]!.path, data.subarray(0, 20));
    const s = await DiskStorage.open(plan, layout);
    expect(s.files[0]!.current).toBe(plan.files[0]!.path);
    expect(s.files[0]!.existed).toBe(true);
    expect((await s.readPiece(0)).equals(piece(data, 0))).toBe(true);
    // Piece 2 lies in b only: a keeps its name.
    await s.writePiece(2, piece(data, 2));
    expect(existsSync(plan.files[0]!.path)).toBe(true);
    // Piece 1 touches a: it moves first.
    await s.writePiece(1, piece(data, 1));
    expect(existsSync(plan.files[0]!.path)).toBe(false);
    expect(s.files[0]!.current).toBe(`${plan.files[0]!.path}.part`);
    await s.close();
  });

  it('prefers the working file when both names exist, and says so', async () => {
    const { plan, layout } = twoFiles(path.join(dir, 't'));
    await mkdir(plan.root);
    await writeFile(plan.files[0]!.path, 'old');
    await writeFile(`${plan.files[0]!.path}.part`, Buffer.alloc(20));
    const s = await DiskStorage.open(plan, layout);
    expect(s.files[0]!.current).toBe(`${plan.files[0]!.path}.part`);
    expect(s.files[0]!.shadowed).toBe(true);
    await s.close();
  });

  it('never shrinks a longer existing file before the end; finalize cuts it and reports it', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    await mkdir(plan.root);
    await writeFile(plan.files[1]!.path, Buffer.concat([data.subarray(20), Buffer.from('tail')]));
    const s = await DiskStorage.open(plan, layout);
    expect((await stat(plan.files[1]!.path)).size).toBe(34);
    for (let i = 0; i < layout.pieceCount; i++) await s.writePiece(i, piece(data, i));
    const { cut } = await s.finalize();
    await s.close();
    expect(cut).toEqual([plan.files[1]!.path]);
    expect((await readFile(plan.files[1]!.path)).equals(data.subarray(20))).toBe(true);
  });

  it('read mode opens what exists, reads missing files as zeros and creates nothing', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    await mkdir(plan.root);
    await writeFile(`${plan.files[0]!.path}.part`, data.subarray(0, 20));
    const s = await DiskStorage.open(plan, layout, { mode: 'read' });
    expect(s.files.map((f) => f.existed)).toEqual([true, false]);
    const all = await s.readPieces(0, 3);
    expect(all.subarray(0, 20).equals(data.subarray(0, 20))).toBe(true);
    expect(isAllZero(all.subarray(20))).toBe(true);
    await expect(s.writePiece(0, piece(data, 0))).rejects.toThrow(/read-only/);
    await s.close();
    expect(existsSync(plan.files[1]!.path)).toBe(false);
    expect(existsSync(`${plan.files[1]!.path}.part`)).toBe(false);
  });

  it('hashPieces tells valid pieces, holes and other data apart, in batches or in stretches', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    const hashes = pieceHashes(data);
    const s = await DiskStorage.open(plan, layout);
    await s.writePiece(0, piece(data, 0));
    const junk = Buffer.from(piece(data, 2));
    junk[15] = junk[15]! ^ 1;
    await s.writePiece(2, junk);
    // What the reads ask for: never more than a batch at once.
    let largest = 0;
    const readPart = s.readPart.bind(s);
    s.readPart = (index, begin, length, into, absent) => {
      largest = Math.max(largest, length);
      return readPart(index, begin, length, into, absent);
    };
    const verdicts = [];
    // threads 2: every other batch (every other piece's stretches) hashed by the helper thread.
    const runs = ([1, 2] as const).flatMap((threads) =>
      [undefined, 16, 5, 1].map((batchBytes) => ({ threads, batchBytes })),
    );
    for (const { threads, batchBytes } of runs) {
      largest = 0;
      const progress: number[] = [];
      const r = await hashPieces({
        storage: s,
        layout,
        pieceHashes: hashes,
        pieces: [0, 1, 2, 3],
        batchBytes,
        threads,
        onProgress: (checked, total) => {
          expect(total).toBe(50);
          progress.push(checked);
        },
      });
      if (batchBytes !== undefined && batchBytes < PL) expect(largest).toBe(batchBytes);
      // Progress moves at each read, stretches included, and ends at the whole.
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress.at(-1)).toBe(50);
      if (batchBytes === 5 && threads === 1) {
        expect(progress.slice(0, 4)).toEqual([5, 10, 15, 16]);
      }
      verdicts.push({
        valid: [0, 1, 2, 3].map((i) => r.valid.has(i)),
        nonZeroInvalid: [0, 1, 2, 3].map((i) => r.nonZeroInvalid.has(i)),
        // Piece 1 holds a's bytes 16-20, never written; piece 3 b's bytes 28-30, past its end.
        absent: [0, 1, 2, 3].map((i) => r.absent.has(i)),
        hashedBytes: r.hashedBytes,
      });
    }
    await s.close();
    for (const v of verdicts) {
      expect(v).toEqual({
        valid: [true, false, false, false],
        nonZeroInvalid: [false, false, true, false],
        absent: [false, true, false, true],
        hashedBytes: 50,
      });
    }
  });

  it('hashPieces on two threads finds what one finds, the helper hashing its share', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    const s = await DiskStorage.open(plan, layout);
    for (const i of [0, 1, 2, 3]) await s.writePiece(i, piece(data, i));
    const judge = async (threads: 1 | 2, batchBytes: number) => {
      const pieces = [0, 1, 2, 3];
      const r = await hashPieces({
        storage: s,
        layout,
        pieceHashes: pieceHashes(data),
        pieces,
        batchBytes,
        threads,
      });
      return [0, 1, 2, 3].map((i) =>
        r.valid.has(i) ? 'ok' : r.nonZeroInvalid.has(i) ? 'bad' : '0',
      );
    };
    // Whole pieces (one a batch) and stretches of 5 bytes: pieces 1 and 3 are the helper's.
    for (const batchBytes of [16, 5]) {
      expect(await judge(2, batchBytes)).toEqual(['ok', 'ok', 'ok', 'ok']);
    }
    // Piece 3 is b's last two bytes: one of them changed on disk.
    await s.flush();
    const b = await open(`${plan.files[1]!.path}.part`, 'r+');
    await b.write(Buffer.from([data[49]! ^ 1]), 0, 1, 29);
    await b.close();
    for (const batchBytes of [16, 5]) {
      expect(await judge(2, batchBytes)).toEqual(['ok', 'ok', 'ok', 'bad']);
      expect(await judge(1, batchBytes)).toEqual(['ok', 'ok', 'ok', 'bad']);
    }
    await s.close();
  });

  it('checkIntact names a file that was replaced, removed or truncated', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    const s = await DiskStorage.open(plan, layout);
    await s.writePiece(3, piece(data, 3));
    const b = `${plan.files[1]!.path}.part`;
    await truncate(b, 10);
    await expect(s.checkIntact()).rejects.toThrow(/b\.part was truncated/);
    // Writes do not stat: a write that does not regrow it to full size still shows the hole.
    await s.writePiece(2, piece(data, 2));
    await expect(s.checkIntact([1])).rejects.toBeInstanceOf(OutputChangedError);
    await rename(b, `${b}.x`);
    await expect(s.checkIntact()).rejects.toThrow(/b\.part was removed/);
    await writeFile(b, Buffer.alloc(30));
    await expect(s.checkIntact()).rejects.toThrow(/b\.part was replaced/);
    await s.close();
  });
});

describe('output plan', () => {
  const t = {
    name: 'multi',
    multiFile: true,
    infoHash: Buffer.alloc(20, 3),
    files: [
      { path: ['a'], length: 3, offset: 0 },
      { path: ['s', 'b'], length: 2, offset: 3 },
    ],
  };

  it('an existing folder that is not the torrent holds it (cp)', async () => {
    const p = await planOutput(t, dir);
    expect(p.root).toBe(path.join(dir, 'multi'));
  });

  it('-o naming the torrent folder of an earlier complete run stays that folder', async () => {
    const root = path.join(dir, 'mine');
    await mkdir(path.join(root, 's'), { recursive: true });
    await writeFile(path.join(root, 'a'), 'xyz');
    await writeFile(path.join(root, 's', 'b.part'), 'xy');
    expect((await planOutput(t, root)).root).toBe(root);
    expect((await planOutput(t, root)).lookalike).toBeUndefined();
    // A file of another size: not this torrent's folder. A download hears why its torrent goes
    // inside (verify would read the folder as the torrent's); to read, it is the folder.
    await writeFile(path.join(root, 'a'), 'xyzw');
    const inside = await planOutput(t, root);
    expect(inside.root).toBe(path.join(root, 'multi'));
    expect(inside.lookalike).toBe(root);
    const read = await planOutput(t, root, 'read');
    expect(read.root).toBe(root);
    expect(read.lookalike).toBeUndefined();
    // A fresh download into a folder of other files says nothing.
    expect((await planOutput(t, dir)).lookalike).toBeUndefined();
  });

  it('-o naming a folder where a file stands for a folder of the torrent is not its folder', async () => {
    const root = path.join(dir, 'other');
    await mkdir(root);
    await writeFile(path.join(root, 'a'), 'xyz');
    await writeFile(path.join(root, 's'), 'not a folder');
    expect((await planOutput(t, root)).root).toBe(path.join(root, 'multi'));
    // Deeper: every file of the torrent there, found through the listing of each folder.
    const deep = { ...t, files: [...t.files, { path: ['s', 't', 'c'], length: 1, offset: 5 }] };
    const root2 = path.join(dir, 'deep');
    await mkdir(path.join(root2, 's', 't'), { recursive: true });
    await writeFile(path.join(root2, 'a'), 'xyz');
    await writeFile(path.join(root2, 's', 'b'), 'xyz');
    expect((await planOutput(deep, root2)).root).toBe(path.join(root2, 'multi'));
    await writeFile(path.join(root2, 's', 'b'), 'xy');
    await writeFile(path.join(root2, 's', 't', 'c'), 'x');
    expect((await planOutput(deep, root2)).root).toBe(root2);
  });

  it('-o naming the folder of a finished selection whose parts file was deleted stays it', async () => {
    // Only `a` was selected; its boundary copies (the .tdl-parts file) are gone.
    const root = path.join(dir, 'picked');
    await mkdir(root);
    await writeFile(path.join(root, 'a'), 'xyz');
    expect((await planOutput(t, root)).root).toBe(root);
    // An empty file of the torrent alone says nothing.
    const e = { ...t, files: [{ path: ['e'], length: 0, offset: 0 }, ...t.files.slice(1)] };
    const other = path.join(dir, 'empty');
    await mkdir(other);
    await writeFile(path.join(other, 'e'), '');
    expect((await planOutput(e, other)).root).toBe(path.join(other, 'multi'));
  });

  it("-o naming a folder with this torrent's resume file beside it stays that folder", async () => {
    const root = path.join(dir, 'part');
    await mkdir(root);
    const header = Buffer.alloc(32);
    header.write('TDLRESUM', 0, 'latin1');
    t.infoHash.copy(header, 12);
    await writeFile(`${root}.tdl-resume`, header);
    expect((await planOutput(t, root)).root).toBe(root);
    await writeFile(`${root}.tdl-resume`, Buffer.alloc(32));
    expect((await planOutput(t, root)).root).toBe(path.join(root, 'multi'));
  });
});

describe('output plan after a run stopped before its first checkpoint', () => {
  const t = {
    name: 'multi',
    multiFile: true,
    infoHash: Buffer.alloc(20, 4),
    files: [
      { path: ['a'], length: 3, offset: 0 },
      { path: ['s', 't', 'b'], length: 2, offset: 3 },
    ],
  };

  it("the torrent's empty folders with the run's lock beside them stay the top folder", async () => {
    const root = path.join(dir, 'stopped');
    await mkdir(path.join(root, 's', 't'), { recursive: true });
    // Without the lock: a folder the user made, the torrent goes inside it (cp).
    expect((await planOutput(t, root)).root).toBe(path.join(root, 'multi'));
    await writeFile(`${root}.tdl-lock`, '999999\n');
    expect((await planOutput(t, root)).root).toBe(root);
    // Not even the torrent's folders yet (only its top one was made).
    await rm(path.join(root, 's'), { recursive: true });
    expect((await planOutput(t, root)).root).toBe(root);
  });

  it('anything else in the folder makes it a place to put the torrent, lock or not', async () => {
    const root = path.join(dir, 'users');
    await mkdir(path.join(root, 's', 't'), { recursive: true });
    await writeFile(`${root}.tdl-lock`, '999999\n');
    await writeFile(path.join(root, 's', 'notes.txt'), 'x');
    expect((await planOutput(t, root)).root).toBe(path.join(root, 'multi'));
    await rm(path.join(root, 's', 'notes.txt'));
    await mkdir(path.join(root, 'photos'));
    expect((await planOutput(t, root)).root).toBe(path.join(root, 'multi'));
  });
});

describe('output plan, single file', () => {
  it('an existing folder holding the complete file puts the file inside it (resume / seed)', async () => {
    const t = {
      name: 'one.bin',
      multiFile: false,
      files: [{ path: ['one.bin'], length: 3, offset: 0 }],
    };
    const root = path.join(dir, 'holder');
    await mkdir(root);
    await writeFile(path.join(root, 'one.bin'), 'xyz');
    const p = await planOutput(t, root);
    expect(p.root).toBe(path.join(root, 'one.bin'));
    expect(p.files.map((f) => f.path)).toEqual([path.join(root, 'one.bin')]);
  });

  it('-o new/ (a trailing slash) names a folder to put the file in, not the file', async () => {
    const t = {
      name: 'one.bin',
      multiFile: false,
      files: [{ path: ['one.bin'], length: 3, offset: 0 }],
    };
    const p = await planOutput(t, path.join(dir, 'new') + '/');
    expect(p.root).toBe(path.join(dir, 'new', 'one.bin'));
    expect(p.parent).toBe(path.join(dir, 'new'));
    const multi = { ...t, name: 'album', multiFile: true };
    expect((await planOutput(multi, path.join(dir, 'new2') + '/')).root).toBe(
      path.join(dir, 'new2', 'album'),
    );
    await writeFile(path.join(dir, 'plain'), 'x');
    await expect(planOutput(t, path.join(dir, 'plain') + '/')).rejects.toThrow(
      /exists and is not a directory/,
    );
  });
});

describe('ResumeWriter', () => {
  it('checkpoints atomically and journals the pieces written since', async () => {
    const { plan, layout, data } = twoFiles(path.join(dir, 't'));
    const s = await DiskStorage.open(plan, layout);
    const file = resumePath(plan);
    const torrent = { infoHash: Buffer.alloc(20, 9), pieceLength: PL, length: 50, pieceCount: 4 };
    const w = new ResumeWriter(file, torrent, s, new Bitfield(4));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    await s.writePiece(1, piece(data, 1));
    w.markWritten(1);
    await s.writePiece(3, piece(data, 3));
    // Not yet recorded: only journaled.
    let d = decodeResume(await readFile(file));
    if (!d.ok) throw new Error(d.reason);
    expect(d.state.have.count).toBe(0);
    expect(d.journal).toEqual([1, 3]);
    await w.checkpoint();
    d = decodeResume(await readFile(file));
    if (!d.ok) throw new Error(d.reason);
    expect(d.state.have.has(1)).toBe(true);
    // Piece 3 was written but never reported done: it stays a hint.
    expect(d.journal).toEqual([3]);
    const st = await stat(`${plan.files[1]!.path}.part`, { bigint: true });
    expect(stampAt(d.state.files, 1)).toEqual({ size: 30, mtimeNs: st.mtimeNs, ino: st.ino });
    expect(existsSync(`${file}.tmp`)).toBe(false);
    await w.remove();
    await s.close();
    expect(existsSync(file)).toBe(false);
  });

  it('checkpoints beside a root whose name leaves no room for the temporary suffix', async () => {
    // The resume file's name is cut to 255 bytes (withSuffix): its temporary copy must fit too.
    const { plan, layout } = twoFiles(path.join(dir, 'é'.repeat(126)));
    const s = await DiskStorage.open(plan, layout);
    const file = resumePath(plan);
    expect(Buffer.byteLength(path.basename(file))).toBeGreaterThan(251);
    const torrent = { infoHash: Buffer.alloc(20, 9), pieceLength: PL, length: 50, pieceCount: 4 };
    const w = new ResumeWriter(file, torrent, s, new Bitfield(4));
    await w.checkpoint();
    expect(decodeResume(await readFile(file)).ok).toBe(true);
    expect((await readdir(dir)).sort()).toEqual([path.basename(file), path.basename(plan.root)]);
    await w.remove();
    await s.close();
  });
});
