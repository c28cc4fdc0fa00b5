import { lstat, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskError, MetainfoError } from '../../src/errors.js';
import {
  applyFileAttributes,
  checkLinks,
  linkTargets,
  type AttributeMeta,
} from '../../src/storage/attributes.js';
import { tempDir } from '../helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-attr-'));
});
afterEach(async () => {
  await cleanup();
});

describe('applyFileAttributes', () => {
  it('makes x files executable and creates relative links inside the folder', async () => {
    const root = path.join(dir, 'top');
    await mkdir(path.join(root, 'bin'), { recursive: true });
    await writeFile(path.join(root, 'bin', 'run.sh'), '#!/bin/sh\n', { mode: 0o640 });
    await writeFile(path.join(root, 'data.txt'), 'hello');
    // A zero-length placeholder where the link goes is replaced.
    await writeFile(path.join(root, 'bin', 'link'), '');
    const meta: AttributeMeta = {
      multiFile: true,
      files: [
        { path: ['bin', 'run.sh'], executable: true },
        { path: ['data.txt'] },
        { path: ['bin', 'link'], symlink: ['data.txt'] },
        { path: ['deep', 'er', 'l2'], symlink: ['bin', 'run.sh'] },
        { path: ['.pad', '7'], padding: true, executable: true },
      ],
    };
    expect(await applyFileAttributes({ root }, meta)).toEqual({ executables: 1, symlinks: 2 });
    expect((await stat(path.join(root, 'bin', 'run.sh'))).mode & 0o777).toBe(0o750);
    expect(await readlink(path.join(root, 'bin', 'link'))).toBe('../data.txt');
    expect(await readFile(path.join(root, 'bin', 'link'), 'utf8')).toBe('hello');
    expect(await readlink(path.join(root, 'deep', 'er', 'l2'))).toBe('../../bin/run.sh');
    // Running it again is harmless.
    expect(await applyFileAttributes({ root }, meta)).toEqual({ executables: 1, symlinks: 2 });
  });

  it("takes a target that names nothing from the top from the link's folder, as libtorrent does", async () => {
    const root = path.join(dir, 'lt');
    await mkdir(path.join(root, 'sub', 'deep'), { recursive: true });
    await writeFile(path.join(root, 'sub', 'b.bin'), 'b');
    await writeFile(path.join(root, 'sub', 'deep', 'c'), 'c');
    await writeFile(path.join(root, 'a.bin'), 'a');
    const files = [
      { path: ['a.bin'] },
      { path: ['sub', 'b.bin'] },
      { path: ['sub', 'deep', 'c'] },
      // libtorrent 2.0 writes these from the link's folder.
      { path: ['sub', 'l'], symlink: ['b.bin'] },
      { path: ['sub', 'dl'], symlink: ['deep'] },
      // From the top when the torrent has it there (BEP 47), whatever is beside the link.
      { path: ['sub', 'top'], symlink: ['a.bin'] },
      // Nothing either way, or only the link itself: kept as given, leading nowhere.
      { path: ['sub', 'none'], symlink: ['nothing'] },
      { path: ['sub', 'self'], symlink: ['self'] },
    ];
    const targets = linkTargets(files);
    expect([...targets]).toEqual([
      [3, ['sub', 'b.bin']],
      [4, ['sub', 'deep']],
      [5, ['a.bin']],
      [6, ['nothing']],
      [7, ['self']],
    ]);
    expect(await applyFileAttributes({ root }, { multiFile: true, files })).toEqual({
      executables: 0,
      symlinks: 5,
    });
    expect(await readlink(path.join(root, 'sub', 'l'))).toBe('b.bin');
    expect(await readFile(path.join(root, 'sub', 'l'), 'utf8')).toBe('b');
    expect(await readlink(path.join(root, 'sub', 'dl'))).toBe('deep');
    expect(await readlink(path.join(root, 'sub', 'top'))).toBe('../a.bin');
    expect(await readlink(path.join(root, 'sub', 'none'))).toBe('../nothing');
    expect(await readlink(path.join(root, 'sub', 'self'))).toBe('../self');
    // What verify and seed look for is the same.
    const found = await checkLinks({ root }, { multiFile: true, files });
    expect(found.map((l) => l.found.state)).toEqual(Array(5).fill('in-place'));
  });

  it('works on a single-file torrent', async () => {
    const f = path.join(dir, 'tool');
    await writeFile(f, 'x', { mode: 0o600 });
    await applyFileAttributes(
      { root: f },
      { multiFile: false, files: [{ path: ['tool'], executable: true }] },
    );
    expect((await stat(f)).mode & 0o777).toBe(0o700);
  });

  it('never follows or writes through a link', async () => {
    const root = path.join(dir, 'top');
    const outside = path.join(dir, 'outside');
    await mkdir(root);
    await mkdir(outside);
    await writeFile(path.join(outside, 'victim'), 'v', { mode: 0o600 });
    await symlink(path.join(outside, 'victim'), path.join(root, 'run'));
    await expect(
      applyFileAttributes(
        { root },
        { multiFile: true, files: [{ path: ['run'], executable: true }] },
      ),
    ).rejects.toThrow(DiskError);
    expect((await stat(path.join(outside, 'victim'))).mode & 0o777).toBe(0o600);

    // A folder on the way to a link that is itself a link.
    await symlink(outside, path.join(root, 'sub'));
    await expect(
      applyFileAttributes(
        { root },
        { multiFile: true, files: [{ path: ['sub', 'l'], symlink: ['x'] }] },
      ),
    ).rejects.toThrow(/through the symbolic link/);
    await expect(lstat(path.join(outside, 'l'))).rejects.toThrow();

    // Something real where the link goes is not replaced.
    await writeFile(path.join(root, 'taken'), 'data');
    await expect(
      applyFileAttributes(
        { root },
        { multiFile: true, files: [{ path: ['taken'], symlink: ['x'] }] },
      ),
    ).rejects.toThrow(DiskError);
    expect(await readFile(path.join(root, 'taken'), 'utf8')).toBe('data');
  });

  it('refuses targets that leave the folder (exit 3)', async () => {
    const root = path.join(dir, 'top');
    await mkdir(root);
    for (const target of [
      ['..', 'x'],
      ['a', '..', '..', 'x'],
    ]) {
      await expect(
        applyFileAttributes(
          { root },
          { multiFile: true, files: [{ path: ['l'], symlink: target }] },
        ),
      ).rejects.toThrow(MetainfoError);
    }
    await expect(
      applyFileAttributes({ root }, { multiFile: true, files: [{ path: ['l'], symlink: ['l'] }] }),
    ).rejects.toThrow(MetainfoError);
    await rm(root, { recursive: true });
  });
});
