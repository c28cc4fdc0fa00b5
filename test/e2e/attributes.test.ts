/**
 * BEP 47 attributes at the end of a download: an `x` file is made executable and an `l` entry
 * becomes a relative symbolic link inside the torrent's folder; a partial `--select` applies
 * neither; `tdl seed` of complete data applies them too. Runs the CLI in process (runCli).
 */
import { chmod, lstat, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 16384;
const tool = randomBytesSeeded(40_000, 'attr-tool');
const doc = randomBytesSeeded(30_000, 'attr-doc');

async function download(extra: string[] = []): Promise<{ root: string; torrent: string }> {
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
  return { root: out, torrent };
}

describe('BEP 47 attributes', () => {
  it('makes the x file executable and the l entry a relative link, once complete', async () => {
    const { root } = await download();
    expect((await stat(path.join(root, 'bin', 'tool'))).mode & 0o111).not.toBe(0);
    expect((await stat(path.join(root, 'doc.txt'))).mode & 0o111).toBe(0);
    const link = path.join(root, 'bin', 'latest');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('tool');
    expect((await readFile(link)).equals(tool)).toBe(true);
  });

  it('a link to the folder that holds it is made as `.`, and verify finds it in place', async () => {
    // As `tdl create` keeps `sub/self -> .`: a link's text relative to its own folder is empty.
    const t = makeTorrent({
      name: 'loop',
      pieceLength: PIECE,
      files: [
        { path: ['sub', 'f'], data: doc },
        { path: ['sub', 'self'], data: Buffer.alloc(0), attr: 'l', symlink: ['sub'] },
      ],
    });
    const s = await fx.seeder(t, PIECE);
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'loop');
    const args = ['--peer', `127.0.0.1:${s.port}`, '--no-dht', '--no-listen'];
    const r = await runCli(['download', torrent, '-o', out, ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readlink(path.join(out, 'sub', 'self'))).toBe('.');
    expect((await readFile(path.join(out, 'sub', 'self', 'f'))).equals(doc)).toBe(true);
    const v = await runCli(['verify', torrent, '-o', out]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it('a partial selection: x on the files selected, no link', async () => {
    // The x file alone: complete, and made executable; its link is not made.
    const { root } = await download(['--select', '1']);
    const st = await stat(path.join(root, 'bin', 'tool'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o111).not.toBe(0);
    await expect(lstat(path.join(root, 'bin', 'latest'))).rejects.toThrow();
  });

  it('tdl seed of complete data applies them as well', async () => {
    const { root, torrent } = await download();
    const tool = path.join(root, 'bin', 'tool');
    await chmod(tool, 0o644);
    const args = ['seed', torrent, '-o', root, '--seed-time', '0.01', '--no-dht', '--port', '0'];
    // No peer comes (a closed port): it seeds for 0.6 s and exits.
    const r = await runCli([...args, '--peer', '127.0.0.1:9']);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(tool)).mode & 0o111).not.toBe(0);
    expect(await readlink(path.join(root, 'bin', 'latest'))).toBe('tool');
  });
});
