/**
 * A download of a 100,000-file torrent keeps no object per file of the metainfo: the set-up of
 * a download (layout, selection, output plan) walks the file list entry by entry and never reads
 * `meta.files`, which would make all 100,000 entries and keep them for the whole run.
 */
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  fileList,
  fileOffsets,
  MAX_FILES,
  parseTorrent,
  type Metainfo,
} from '../../src/metainfo/torrent.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { Layout } from '../../src/storage/layout.js';
import { planFile, planFileCount, planFilePath, planOutput } from '../../src/storage/output.js';
import { resolveSelection, selectedBytes, wantedPieces } from '../../src/storage/selection.js';
import { tempDir } from '../helpers/cli.js';

let torrent: Buffer;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('tdl-many-mem-'));
  // Written out by hand: bencoding 100,000 entries through encode() takes seconds.
  const entries: string[] = [];
  let total = 0;
  for (let i = 0; i < MAX_FILES; i++) {
    const length = i % 97 === 0 ? 0 : 1000;
    const name = `f${i}.bin`;
    entries.push(`d6:lengthi${length}e4:pathl2:d${i % 10}${name.length}:${name}ee`);
    total += length;
  }
  const pl = 256 * 1024;
  const pieces = 20 * Math.ceil(total / pl);
  torrent = Buffer.concat([
    Buffer.from(
      `d4:infod5:filesl${entries.join('')}e4:name4:many12:piece lengthi${pl}e6:pieces${pieces}:`,
    ),
    Buffer.alloc(pieces),
    Buffer.from('ee'),
  ]);
});
afterAll(async () => {
  await cleanup?.();
});

/** `m` with its `files` getter watched. */
function watched(m: Metainfo): { reads: () => number } {
  const spy = vi.spyOn(m, 'files', 'get');
  return { reads: () => spy.mock.calls.length };
}

describe('the set-up of a 100,000-file download', () => {
  it(
    'builds its layout, selection and output plan without reading meta.files',
    { timeout: 180_000 },
    async () => {
      const m = parseTorrent(torrent);
      const w = watched(m);
      const layout = new Layout({ starts: fileOffsets(m) }, m.pieceLength, m.length);
      expect(layout.fileCount).toBe(MAX_FILES);
      expect(layout.fileLength(MAX_FILES - 1)).toBe(1000);
      expect(layout.fileLength(97)).toBe(0);
      const list = fileList(m);
      const selected = resolveSelection(list, m.name, true, { include: ['d3/**'] });
      expect(selected!.reduce((n, v) => n + v, 0)).toBe(MAX_FILES / 10);
      expect(selectedBytes(list, selected)).toBeGreaterThan(0);
      expect(wantedPieces(layout, selected).count).toBeGreaterThan(0);
      const plan = await planOutput(
        { name: m.name, multiFile: true, infoHash: m.infoHash, files: list },
        // Not there yet: an existing folder is searched for this torrent's files (output.ts).
        path.join(dir, 'out'),
      );
      expect(planFileCount(plan)).toBe(MAX_FILES);
      expect(planFilePath(plan, 5).endsWith('f5.bin')).toBe(true);
      expect(planFile(plan, 5)).toEqual({
        path: planFilePath(plan, 5),
        length: 1000,
        offset: layout.fileOffset(5),
      });
      expect(w.reads()).toBe(0);
      // The same layout as the one built from the file list.
      const ref = new Layout(m.files, m.pieceLength, m.length);
      for (let p = 0; p < layout.pieceCount; p += 37) expect(layout.spans(p)).toEqual(ref.spans(p));
    },
  );
});

/** A full collection: `--expose-gc` turned on at run time (the test runner's workers lack it). */
function collector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('the storage of a 100,000-file download', () => {
  it(
    'keeps its per-file state in typed arrays: opening and writing make no object per file',
    { timeout: 180_000 },
    async () => {
      const m = parseTorrent(torrent);
      const layout = new Layout({ starts: fileOffsets(m) }, m.pieceLength, m.length);
      const plan = await planOutput(
        { name: m.name, multiFile: true, infoHash: m.infoHash, files: fileList(m) },
        path.join(dir, 'storage'),
      );
      const gc = collector();
      // The snapshot of every file (an object each) is for reports: the download never reads it,
      // nor the plan's list.
      const snapshot = vi.spyOn(DiskStorage.prototype, 'files', 'get');
      const planList = vi.spyOn(Object.getPrototypeOf(plan) as typeof plan, 'files', 'get');
      gc();
      const before = process.memoryUsage().heapUsed;
      const s = await DiskStorage.open(plan, layout, { inline: false });
      try {
        await s.writePiece(0, Buffer.alloc(layout.pieceSize(0), 1));
        await s.writePiece(1, Buffer.alloc(layout.pieceSize(1), 2));
        await s.flush();
        const written = s.takeDirty();
        expect(written.length).toBeGreaterThan(200);
        await s.syncFiles(written);
        await s.stampTable(written);
        await s.checkIntact();
        gc();
        const grown = process.memoryUsage().heapUsed - before;
        // An object per file (path strings aside) would be 100,000 × 50+ bytes: 5 MB and more.
        expect(grown).toBeLessThan(3_000_000);
        expect(snapshot).not.toHaveBeenCalled();
        expect(planList).not.toHaveBeenCalled();
        expect(s.currentPath(5)).toBe(`${planFilePath(plan, 5)}.part`);
        expect(s.partPath(5)).toBe(`${planFilePath(plan, 5)}.part`);
        expect(s.existed(5)).toBe(false);
      } finally {
        await s.close();
        snapshot.mockRestore();
        planList.mockRestore();
      }
    },
  );
});
