/**
 * What the client does to a download's output at either end (swarm/output-files.ts): final
 * names and sizes, BEP 47 `x`, and which helper files go once the download is over.
 */
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileOffsets, parseTorrent } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import { OutputFiles } from '../../src/swarm/output-files.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { tempDir } from '../helpers/cli.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-output-files-'));
});
afterEach(async () => {
  await cleanup();
});

/** Two files, 40 and 30 bytes in 32-byte pieces (piece 1 crosses the boundary); `a` is `x`. */
function twoFiles() {
  const a = randomBytesSeeded(40, 'a');
  const b = randomBytesSeeded(30, 'b');
  const made = makeTorrent({
    name: 'pair',
    pieceLength: 32,
    files: [
      { path: ['a.bin'], data: a, attr: 'x' },
      { path: ['b.bin'], data: b },
    ],
  });
  const meta = parseTorrent(made.torrent);
  const layout = new Layout({ starts: fileOffsets(meta) }, meta.pieceLength, meta.length);
  return { made, meta, layout, a, b };
}

describe('OutputFiles', () => {
  it('a whole torrent: final names and sizes, x applied, every helper file removed', async () => {
    const { made, meta, layout, a, b } = twoFiles();
    const out = await OutputFiles.open(meta, layout, path.join(dir, 'pair'), null, false);
    for (let p = 0; p < made.pieces.length; p++) await out.storage.writePiece(p, made.pieces[p]!);
    await writeFile(out.resumeFile, 'resume');
    await writeFile(`${out.resumeFile}.tmp`, 'resume');
    await writeFile(out.metadataFile, 'metadata');
    await out.storage.sync();
    expect(await out.finalize()).toEqual([]);
    await out.removeLeftovers(null);
    await out.close();
    expect((await readFile(path.join(dir, 'pair', 'a.bin'))).equals(a)).toBe(true);
    expect((await readFile(path.join(dir, 'pair', 'b.bin'))).equals(b)).toBe(true);
    expect((await stat(path.join(dir, 'pair', 'a.bin'))).mode & 0o111).not.toBe(0);
    expect((await stat(path.join(dir, 'pair', 'b.bin'))).mode & 0o111).toBe(0);
    for (const f of [out.resumeFile, `${out.resumeFile}.tmp`, out.metadataFile]) {
      expect(existsSync(f), f).toBe(false);
    }
  });

  it('a selection: only its file, no x (the torrent is not all there), the parts file kept', async () => {
    const { made, meta, layout, b } = twoFiles();
    const selected = Uint8Array.from([0, 1]);
    const out = await OutputFiles.open(meta, layout, path.join(dir, 'pair'), selected, false);
    // Pieces 1 and 2 touch b.bin; piece 1's bytes of a.bin go to the parts file.
    await out.storage.writePiece(1, made.pieces[1]!);
    await out.storage.writePiece(2, made.pieces[2]!);
    const partsFile = out.storage.parts?.file;
    expect(partsFile).toBeDefined();
    await out.storage.sync();
    await out.finalize();
    await out.removeLeftovers(null);
    await out.close();
    expect((await readFile(path.join(dir, 'pair', 'b.bin'))).equals(b)).toBe(true);
    expect(existsSync(path.join(dir, 'pair', 'a.bin'))).toBe(false);
    expect(existsSync(partsFile!)).toBe(true);
  });

  it('copies boundary bytes out of the parts file once their file is selected', async () => {
    const { made, meta, layout, a } = twoFiles();
    const first = await OutputFiles.open(
      meta,
      layout,
      path.join(dir, 'pair'),
      Uint8Array.from([0, 1]),
      false,
    );
    await first.storage.writePiece(1, made.pieces[1]!);
    await first.close();
    // The selection grows to a.bin: piece 1's first 8 bytes are a.bin's last 8.
    const wider = await OutputFiles.open(meta, layout, path.join(dir, 'pair'), null, false);
    const have = new Bitfield(layout.pieceCount);
    have.set(1);
    await wider.copyFromParts(have);
    const aFile = wider.storage.currentPath(0)!;
    await wider.close();
    // In a.bin itself (under its working name), not only readable through the parts file.
    expect((await readFile(aFile)).subarray(32, 40)).toEqual(a.subarray(32, 40));
  });
});
