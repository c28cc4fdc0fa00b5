/**
 * BEP 47 attributes at the end of a download, against the built CLI: an `x` file is made
 * executable and an `l` entry becomes a relative symbolic link inside the torrent's folder; a
 * partial `--select` applies neither.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 16384;
const tool = randomBytesSeeded(40_000, 'attr-tool');
const doc = randomBytesSeeded(30_000, 'attr-doc');

async function download(extra: string[] = []): Promise<string> {
  const t = makeTorrent({
    name: 'pkg',
    pieceLength: PIECE,
    files: [
      { path: ['bin', 'tool'], data: tool, attr: 'x' },
      { path: ['doc.txt'], data: doc },
      { path: ['bin', 'latest'], data: Buffer.alloc(0), attr: 'l', symlink: ['bin', 'tool'] },
    ],
  });
  const s = await fx.seeder(t, PIECE);
  const torrent = await fx.writeTorrent(t);
  const out = path.join(fx.dir, 'out');
  const r = await runCli([
    'download',
    torrent,
    '-o',
    out,
    '--peer',
    `127.0.0.1:${s.port}`,
    '--no-dht',
    '--no-listen',
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

describe('BEP 47 attributes', () => {
  it('makes the x file executable and the l entry a relative link, once complete', async () => {
    const root = await download();
    expect((await stat(path.join(root, 'bin', 'tool'))).mode & 0o111).not.toBe(0);
    expect((await stat(path.join(root, 'doc.txt'))).mode & 0o111).toBe(0);
    const link = path.join(root, 'bin', 'latest');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('tool');
    expect((await readFile(link)).equals(tool)).toBe(true);
  });

  it('applies neither to a partial selection', async () => {
    const root = await download(['--select', '2']);
    expect((await readFile(path.join(root, 'doc.txt'))).equals(doc)).toBe(true);
    await expect(lstat(path.join(root, 'bin', 'latest'))).rejects.toThrow();
  });
});
