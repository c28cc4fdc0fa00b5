/**
 * A run that stops between making the torrent's folders and writing its first checkpoint: the
 * same command run again must download into the same `-o` folder, not one level down in a new
 * top folder beside the first run's leftovers. The real CLI (dist/) is started with a preload
 * that holds, or fails, the rename of the resume file's first checkpoint; the held one is then
 * killed with SIGKILL, as a crash or `kill -9` would stop it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, killWithTest, MAIN, until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;

/** Three files in two folders, boundaries inside pieces. */
function torrent() {
  const files = [
    { path: ['top.bin'], data: randomBytesSeeded(50_000, 'early-0') },
    { path: ['sub', 'a.bin'], data: randomBytesSeeded(70_000, 'early-1') },
    { path: ['sub', 'deep', 'b.bin'], data: randomBytesSeeded(40_000, 'early-2') },
  ];
  return { files, t: makeTorrent({ name: 'tree', pieceLength: PIECE, files }) };
}

/**
 * Preload for the CLI: the rename that puts a checkpoint in place as `*.tdl-resume` never ends
 * (`hold`) or fails with ENOSPC (`fail`); the first such call writes `mark`.
 */
const HOOK = `
const fsp = require('node:fs/promises');
const fs = require('node:fs');
const real = fsp.rename;
fsp.rename = function (from, to) {
  if (String(to).endsWith('.tdl-resume')) {
    fs.writeFileSync(process.env.TDL_TEST_MARK, 'reached');
    if (process.env.TDL_TEST_RENAME === 'hold') return new Promise(() => {});
    const e = new Error('ENOSPC: no space left on device, rename');
    e.code = 'ENOSPC';
    return Promise.reject(e);
  }
  return real.apply(this, arguments);
};
`;

/** Start `tdl download` with the preload; resolves once it reached the first checkpoint's rename. */
async function startHooked(mode: 'hold' | 'fail', args: string[]) {
  const hook = path.join(fx.dir, 'hook.cjs');
  const mark = path.join(fx.dir, `mark-${mode}`);
  await writeFile(hook, HOOK);
  const child = spawn(process.execPath, ['--require', hook, MAIN, 'download', ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBUG: '', TDL_TEST_MARK: mark, TDL_TEST_RENAME: mode },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  killWithTest(child, exited, (c) => fx.onClose(c));
  await until(() => existsSync(mark) || child.exitCode !== null, 20_000, 'the first checkpoint');
  expect(existsSync(mark), stderr).toBe(true);
  return { child, exited, stderr: () => stderr };
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe('a run stopped before its first checkpoint', () => {
  beforeAll(() => assertBuilt());

  it('killed (SIGKILL): the same command downloads into the same folder, leaving nothing behind', async () => {
    const { files, t } = torrent();
    const file = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    // A peer that is never reached: the first run only makes the folders and its checkpoint.
    const args = [file, '-o', out, '--peer', '127.0.0.1:1', '--no-listen', '--no-dht', '-q'];
    const first = await startHooked('hold', args);
    // What the crash leaves: the torrent's (empty) folders, the lock, the checkpoint's temp file.
    expect(await tree(out)).toEqual(['sub', 'sub/deep']);
    expect(existsSync(`${out}.tdl-lock`)).toBe(true);
    expect(existsSync(`${out}.tdl-resume`)).toBe(false);
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.exited;

    const s = await fx.seeder(t, PIECE);
    const r = await runCli([
      'download',
      file,
      '-o',
      out,
      '--peer',
      `127.0.0.1:${s.port}`,
      '--no-listen',
      '--no-dht',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.events.find((e) => e.event === 'started')?.output).toBe(out);
    expect(await tree(out)).toEqual(['sub', 'sub/a.bin', 'sub/deep', 'sub/deep/b.bin', 'top.bin']);
    for (const f of files) {
      expect((await readFile(path.join(out, ...f.path))).equals(f.data)).toBe(true);
    }
    // The lock left by the killed run was taken over and given back.
    expect((await readdir(fx.dir)).filter((n) => n.startsWith('out'))).toEqual(['out']);
  });

  it('its checkpoint failing (disk full): exit 6, and the folders it made are removed', async () => {
    const { t } = torrent();
    const file = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const args = [file, '-o', out, '--peer', '127.0.0.1:1', '--no-listen', '--no-dht'];
    const run = await startHooked('fail', args);
    expect(await run.exited).toBe(6);
    expect(run.stderr()).toMatch(/cannot write the resume file .*no space left on device/);
    // Nothing of the run is left to pass for the torrent's folder at the next run.
    expect((await readdir(fx.dir)).filter((n) => n.startsWith('out'))).toEqual([]);
  });
});
