import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskError } from '../../src/errors.js';
import { LOCK_SUFFIX, lockOutput } from '../../src/storage/lock.js';
import { withSuffix } from '../../src/storage/names.js';
import { tempDir } from '../helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-lock-'));
});
afterEach(async () => {
  await cleanup();
});

describe('output lock', () => {
  it('one holder at a time; released, it can be taken again', async () => {
    const root = path.join(dir, 'sub', 'out.bin');
    const release = await lockOutput(root);
    expect(await readFile(`${root}.tdl-lock`, 'latin1')).toBe(`${process.pid}\n`);
    await expect(lockOutput(root)).rejects.toThrow(DiskError);
    await expect(lockOutput(root)).rejects.toThrow(/in use by another tdl \(pid \d+\)/);
    await release();
    expect(existsSync(`${root}.tdl-lock`)).toBe(false);
    await (
      await lockOutput(root)
    )();
  });

  it('locks an output whose name leaves no room for more than the lock suffix', async () => {
    // 250 bytes: `.tdl-lock` fits only cut (withSuffix), and the file the pid is first written
    // to must fit too.
    const root = path.join(dir, 'é'.repeat(125));
    const release = await lockOutput(root);
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    expect(Buffer.byteLength(names[0]!)).toBeLessThanOrEqual(255);
    expect(names[0]!.endsWith('.tdl-lock')).toBe(true);
    await expect(lockOutput(root)).rejects.toThrow(/in use by another tdl/);
    await release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over a lock whose process is gone, or that is empty', async () => {
    const root = path.join(dir, 'out');
    // A pid that existed and is gone.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    await writeFile(`${root}.tdl-lock`, `${gone.stdout}\n`);
    await (
      await lockOutput(root)
    )();
    // An older tdl's lock held no pid.
    await writeFile(`${root}.tdl-lock`, '');
    await (
      await lockOutput(root)
    )();
    // Left by an earlier run of this very process that could not remove it.
    await writeFile(`${root}.tdl-lock`, `${process.pid}\n`);
    await (
      await lockOutput(root)
    )();
  });

  it("a file of the user's in the lock's place is left alone: DiskError, naming it", async () => {
    const root = path.join(dir, 'out');
    await writeFile(`${root}.tdl-lock`, 'my lock notes\n');
    await expect(lockOutput(root)).rejects.toThrow(
      new DiskError(
        `${root}.tdl-lock is in the way of the lock file: it is not a tdl lock file (move it away)`,
      ),
    );
    expect(await readFile(`${root}.tdl-lock`, 'utf8')).toBe('my lock notes\n');
    expect(await readdir(dir)).toEqual(['out.tdl-lock']);
  });

  it("a symbolic link in the lock's place is not followed: DiskError, naming it", async () => {
    const root = path.join(dir, 'out');
    const target = path.join(dir, 'elsewhere');
    await symlink(target, `${root}.tdl-lock`);
    await expect(lockOutput(root)).rejects.toThrow(
      `${root}.tdl-lock is a symbolic link in the place of the lock file: refusing to follow it (move it away)`,
    );
    expect(existsSync(target)).toBe(false);
  });

  it('two takes at once in one process, of a free or a stale lock: one wins, nothing left over', async () => {
    // One process knows its own locks (a second take sees its pid): this checks the outcome and
    // that no temporary file stays; the race between processes is e2e/lock-race.test.ts.
    for (let trial = 0; trial < 40; trial++) {
      const root = path.join(dir, `race${trial}`);
      if (trial % 2 === 0) await writeFile(`${root}.tdl-lock`, '999999999\n');
      const results = await Promise.allSettled([lockOutput(root), lockOutput(root)]);
      const taken = results.filter((r) => r.status === 'fulfilled');
      expect(taken, `trial ${trial}`).toHaveLength(1);
      expect(await readFile(`${root}.tdl-lock`, 'latin1')).toBe(`${process.pid}\n`);
      await (taken[0] as PromiseFulfilledResult<() => Promise<void>>).value();
      // Nothing left beside the output: no lock, no temporary file.
      expect((await readdir(dir)).filter((n) => n.startsWith(`race${trial}.`))).toEqual([]);
    }
  });

  it('removes the files of its own that a run which died left beside the lock, and no other', async () => {
    const root = path.join(dir, 'out');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    // A crash between writing the file of its own and removing it leaves it behind.
    const leftover = `out.tdl-lock.${gone}-0badcafe`;
    // One of a run still going (this process), and names that only look alike.
    const others = [
      `out.tdl-lock.${process.pid}-12345678`,
      `out.tdl-lock.${gone}-notahex!`,
      `out.tdl-lock.${gone}`,
      `other.tdl-lock.${gone}-0badcafe`,
      'out',
    ];
    for (const name of [leftover, ...others]) await writeFile(path.join(dir, name), `${gone}\n`);
    const release = await lockOutput(root);
    const left = await readdir(dir);
    expect(left).not.toContain(leftover);
    for (const name of others) expect(left).toContain(name);
    await release();

    // An output whose name fills 255 bytes: its files of its own are cut and tagged too.
    const long = path.join(dir, 'é'.repeat(127));
    const longLeftover = path.basename(
      withSuffix(withSuffix(long, LOCK_SUFFIX), `.${gone}-0badcafe`),
    );
    await writeFile(path.join(dir, longLeftover), `${gone}\n`);
    await (
      await lockOutput(long)
    )();
    expect(await readdir(dir)).not.toContain(longLeftover);
  });

  it('a lock that cannot be written (a full disk) leaves no file of its own behind', async () => {
    const probe = await open(path.join(dir, 'probe'), 'w');
    const handle = Object.getPrototypeOf(probe) as { writeFile: () => Promise<void> };
    await probe.close();
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
    });
    const spy = vi.spyOn(handle, 'writeFile').mockRejectedValueOnce(full);
    try {
      await expect(lockOutput(path.join(dir, 'out.bin'))).rejects.toThrow(/no space left/);
    } finally {
      spy.mockRestore();
    }
    expect(await readdir(dir)).toEqual(['probe']);
  });

  it('a FIFO in the place of the lock is an error, not a wait', async () => {
    const root = path.join(dir, 'fifo');
    spawnSync('mkfifo', [`${root}.tdl-lock`]);
    await expect(lockOutput(root)).rejects.toThrow(/lock file .*not a regular file/);
  });

  // sysfs refuses new files even to root: the message names the lock, not the temporary file
  // beside it that the lock is made from.
  it.runIf(existsSync('/sys/kernel'))(
    'a folder where no file can be made: the lock is named',
    async () => {
      await expect(lockOutput('/sys/tdl-test')).rejects.toThrow(
        /^cannot create the lock file \/sys\/tdl-test\.tdl-lock: permission denied$/,
      );
    },
  );
});
