import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  eachLimited,
  Inline,
  INLINE_PAUSE_MS,
  INLINE_SLICE_MS,
  INLINE_SLOW_MS,
  listNames,
  makeFolders,
  startSyncHelper,
  stopSyncHelper,
  syncfsFlushes,
  syncfsUsable,
  syncFileSystems,
  syncHelperPid,
  toDiskError,
} from '../../src/storage/fs-util.js';
import { tempDir } from '../helpers/cli.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('eachLimited', () => {
  it('runs every item, never more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    await eachLimited([...Array(50).keys()], 4, async (i) => {
      running++;
      most = Math.max(most, running);
      await tick();
      seen.push(i);
      running--;
    });
    expect(most).toBe(4);
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(50).keys()]);
  });

  it('starts nothing new after a failure and throws the first one', async () => {
    const started: number[] = [];
    const run = eachLimited([...Array(20).keys()], 2, async (i) => {
      started.push(i);
      await tick();
      if (i === 3) throw new Error('three');
      if (i === 4) throw new Error('four');
    });
    await expect(run).rejects.toThrow('three');
    expect(started.length).toBeLessThan(8);
  });

  it('does nothing for no items', async () => {
    await eachLimited([], 4, () => Promise.reject(new Error('never')));
  });
});

describe('makeFolders', () => {
  it('makes the missing folders and says which was first, as mkdir -p', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const deep = path.join(dir, 'a', 'b', 'c');
      expect(await makeFolders(deep, 0o700)).toBe(path.join(dir, 'a'));
      expect(statSync(deep).isDirectory()).toBe(true);
      expect(statSync(deep).mode & 0o777).toBe(0o700);
      expect(await makeFolders(deep)).toBeUndefined();
      await writeFile(path.join(dir, 'f'), 'x');
      await expect(makeFolders(path.join(dir, 'f'))).rejects.toMatchObject({ code: 'EEXIST' });
      await expect(makeFolders(path.join(dir, 'f', 'g'))).rejects.toMatchObject({
        code: 'ENOTDIR',
      });
    } finally {
      await cleanup();
    }
  });

  // Node's recursive mkdir never settles there, spinning a pool thread at full CPU.
  it.runIf(existsSync('/proc/self/status'))(
    'fails where the parent exists but refuses the child (procfs)',
    async () => {
      await expect(makeFolders('/proc/self/tdl-no/such')).rejects.toMatchObject({
        code: 'ENOENT',
      });
    },
    5_000,
  );
});

describe('listNames', () => {
  it('finds the names asked for, the same inline or through the thread pool', async () => {
    const { dir, cleanup } = await tempDir('tdl-list-');
    try {
      // More entries than one batch read inline.
      for (let i = 0; i < 600; i++) await writeFile(path.join(dir, `f${i}`), '');
      await mkdir(path.join(dir, 'sub'));
      const want = new Set(['f0', 'f299', 'f599', 'sub', 'absent']);
      const inline = new Inline();
      const a = await listNames(dir, want, inline);
      expect(inline.calls).toBe(1);
      const b = await listNames(dir, want);
      const off = await listNames(dir, want, new Inline(false));
      for (const found of [a, b, off])
        expect([...found].sort()).toEqual(['f0', 'f299', 'f599', 'sub']);
      // Not there, or not a folder: nothing in it.
      for (const i of [inline, undefined]) {
        expect((await listNames(path.join(dir, 'nope'), want, i)).size).toBe(0);
        expect((await listNames(path.join(dir, 'f1'), want, i)).size).toBe(0);
      }
    } finally {
      await cleanup();
    }
  });
});

describe('Inline', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a slow call turns inline calls off for a while; disabled, they never run inline', () => {
    vi.useFakeTimers({ toFake: ['hrtime'] });
    const inline = new Inline();
    expect(inline.on).toBe(true);
    expect(inline.run(() => 7)).toBe(7);
    expect(inline.on).toBe(true);
    inline.run(() => vi.advanceTimersByTime(INLINE_SLOW_MS + 1));
    expect(inline.on).toBe(false);
    expect(inline.pauses).toBe(1);
    vi.advanceTimersByTime(INLINE_PAUSE_MS - 1);
    expect(inline.on).toBe(false);
    vi.advanceTimersByTime(2);
    expect(inline.on).toBe(true);
    expect(inline.calls).toBe(2);
    expect(new Inline(false).on).toBe(false);
  });

  it('a failing call throws, and still counts', () => {
    const inline = new Inline();
    expect(() =>
      inline.run(() => {
        throw new Error('EIO');
      }),
    ).toThrow('EIO');
    expect(inline.calls).toBe(1);
  });

  it('pace yields to the event loop once a slice was spent inline', async () => {
    vi.useFakeTimers({ toFake: ['hrtime'] });
    const inline = new Inline();
    let turned = false;
    setImmediate(() => (turned = true));
    await inline.pace();
    expect(turned).toBe(false);
    inline.run(() => vi.advanceTimersByTime(INLINE_SLICE_MS));
    await inline.pace();
    expect(turned).toBe(true);
  });
});

describe('the sync helper', () => {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('answers concurrent requests in order (a path with a newline too), and ends when stopped', async (ctx) => {
    const { dir, cleanup } = await tempDir('tdl-syncfs-');
    try {
      if (!syncfsUsable() || syncfsFlushes(dir) !== true) ctx.skip();
      startSyncHelper();
      startSyncHelper(); // a second user: one helper
      const pid = syncHelperPid();
      expect(pid).not.toBeNull();
      const odd = path.join(dir, 'new\nline');
      await mkdir(odd);
      // One that fails among them: each answer goes to its own request.
      const results = await Promise.all([
        syncFileSystems([dir]),
        syncFileSystems([path.join(dir, 'gone')]),
        syncFileSystems([dir, dir]),
        syncFileSystems([odd]),
        syncFileSystems([dir]),
      ]);
      expect(results).toEqual([true, false, true, true, true]);
      // A path that is not there: sync -f fails, the caller syncs file by file.
      expect(await syncFileSystems([path.join(dir, 'gone')])).toBe(false);
      stopSyncHelper();
      expect(syncHelperPid()).toBe(pid);
      stopSyncHelper();
      expect(syncHelperPid()).toBeNull();
      // Without the helper, a spawn per call.
      expect(await syncFileSystems([dir])).toBe(true);
      const end = Date.now() + 10_000;
      while (alive(pid!) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(alive(pid!)).toBe(false);
    } finally {
      stopSyncHelper();
      await cleanup();
    }
  });
});

describe('the sync helper that cannot start', () => {
  it('is no fault: the spawn error (EMFILE) is caught, and syncs go file by file', async (ctx) => {
    if (!syncfsUsable()) ctx.skip();
    // What spawn gives under a tiny `ulimit -n`: no pipes, and an 'error' event on the next tick.
    const cp = process.getBuiltinModule('node:child_process');
    const spawn = vi.spyOn(cp, 'spawn').mockImplementation(() => {
      const child = Object.assign(new EventEmitter(), {
        stdin: null,
        stdout: null,
        pid: undefined,
        kill: () => true,
        unref: () => {},
      });
      const e = Object.assign(new Error('spawn /bin/sh EMFILE'), { code: 'EMFILE' });
      process.nextTick(() => child.emit('error', e));
      return child as unknown as ChildProcess;
    });
    try {
      startSyncHelper();
      await new Promise((r) => setTimeout(r, 20));
      expect(syncHelperPid()).toBeNull();
    } finally {
      spawn.mockRestore();
      stopSyncHelper();
    }
  });

  it('says how to raise the limit when a file cannot be opened for it', () => {
    const e = Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
    expect(toDiskError(e, 'cannot create /d/f.part').message).toBe(
      "cannot create /d/f.part: too many open files (this process's limit: raise it with ulimit -n)",
    );
  });
});

describe('toDiskError', () => {
  const sysErr = (code: string, p: string) =>
    Object.assign(new Error(`${code}: x, mkdir '${p}'`), { code, path: p });

  it('says the system error in words, and the path only when not named already', () => {
    expect(toDiskError(sysErr('EPERM', '/d/new'), 'cannot create folder /d/new').message).toBe(
      'cannot create folder /d/new: operation not permitted',
    );
    expect(toDiskError(sysErr('EACCES', '/d'), 'cannot create folder /d/new/x').message).toBe(
      'cannot create folder /d/new/x: permission denied (/d)',
    );
  });
});
