/**
 * Torrents made by `tdl create` load in libtorrent, transmission-show and aria2c with the same
 * info hash, and libtorrent finds the data complete against them. The other way round,
 * libtorrent's hybrid v1+v2 torrents (with pad files and attributes) load in tdl with the v1
 * info hash.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, findExecutable } from '../../scripts/lib/real-peers.mjs';
import { runCli, tempDir } from '../helpers/cli.js';
import { spawnTdl } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';
import { programsGate } from './swarm.js';

const gate = programsGate(['libtorrent', 'aria2c', 'transmission-remote']);
const TIMEOUT_MS = 60_000;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** libtorrent: the info hash, and whether a recheck of the data finds every piece. */
const LT_CHECK = `
import sys, time, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
s = lt.session({'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
                'enable_natpmp': False, 'listen_interfaces': '127.0.0.1:0'})
h = s.add_torrent({'ti': ti, 'save_path': sys.argv[2]})
deadline = time.time() + 30
while time.time() < deadline and not h.status().is_seeding:
    time.sleep(0.1)
print(str(ti.info_hashes().v1), h.status().is_seeding, h.status().num_pieces, ti.num_pieces())
`;

describe.skipIf(gate.skip)('tdl create and real clients', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    gate.assertPresent();
    ({ dir, cleanup } = await tempDir('tdl-interop-create-'));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  for (const kind of ['folder', 'file'] as const) {
    it(
      `a ${kind} torrent loads with the same info hash in libtorrent, transmission-show and aria2c`,
      async () => {
        const root = path.join(dir, kind === 'folder' ? 'album' : 'one.bin');
        if (kind === 'folder') {
          await mkdir(path.join(root, 'cd1'), { recursive: true });
          await writeFile(path.join(root, 'cd1', 'a.flac'), randomBytesSeeded(300_001, 'a'));
          await writeFile(path.join(root, 'b.txt'), randomBytesSeeded(17, 'b'));
          await writeFile(path.join(root, 'é ü.bin'), randomBytesSeeded(70_000, 'c'));
          await writeFile(path.join(root, 'empty'), '');
        } else {
          await writeFile(root, randomBytesSeeded(1_000_003, 'one'));
        }
        const out = path.join(dir, `${kind}.torrent`);
        const r = await runCli([
          'create',
          root,
          '-o',
          out,
          '--tracker',
          'http://127.0.0.1:1/announce',
          '--web-seed',
          'http://127.0.0.1:2/files/',
          '--piece-length',
          '32K',
          '--no-date',
        ]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const hash = /info hash: ([0-9a-f]{40})/.exec(r.stdout)![1]!;

        const [ltHash, seeding, have, total] = run(PYTHON, ['-c', LT_CHECK, out, dir])
          .trim()
          .split(' ');
        expect(ltHash).toBe(hash);
        expect(seeding).toBe('True');
        expect(have).toBe(total);

        const show = run(findExecutable('transmission-show')!, [out]);
        expect(show).toMatch(new RegExp(`Hash(?: v1)?: ${hash}`, 'i'));

        const aria = run(findExecutable('aria2c')!, ['--show-files', out]);
        expect(aria.toLowerCase()).toContain(`info hash: ${hash}`);
      },
      TIMEOUT_MS,
    );
  }

  it(
    "libtorrent's hybrid torrent with pad files and attributes loads over v1",
    async () => {
      const src = path.join(dir, 'hy');
      await mkdir(src, { recursive: true });
      await writeFile(path.join(src, 'a.bin'), randomBytesSeeded(40_000, 'ha'));
      await writeFile(path.join(src, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      await writeFile(path.join(src, 'z.bin'), randomBytesSeeded(50_000, 'hz'));
      const out = path.join(dir, 'hy.torrent');
      run(PYTHON, [
        '-c',
        `
import sys, libtorrent as lt
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
ct = lt.create_torrent(fs, 16384)
lt.set_piece_hashes(ct, sys.argv[2])
open(sys.argv[3], 'wb').write(lt.bencode(ct.generate()))
print(lt.torrent_info(sys.argv[3]).info_hashes().v1)
`,
        src,
        dir,
        out,
      ]);
      const ltHash = run(PYTHON, [
        '-c',
        'import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hashes().v1)',
        out,
      ]).trim();
      const r = await runCli(['info', out, '--json']);
      expect(r.code).toBe(0);
      const info = JSON.parse(r.stdout) as {
        infoHash: string;
        hybrid: boolean;
        size: number;
        files: { path: string[]; padding?: boolean; executable?: boolean }[];
      };
      expect(info.infoHash).toBe(ltHash);
      expect(info.hybrid).toBe(true);
      expect(info.size).toBe(40_000 + 18 + 50_000);
      const real = info.files.filter((f) => !f.padding);
      expect(real.map((f) => f.path.join('/'))).toEqual(['a.bin', 'run.sh', 'z.bin']);
      expect(real[1]!.executable).toBe(true);
      expect(info.files.some((f) => f.padding)).toBe(true);
    },
    TIMEOUT_MS,
  );

  it(
    "libtorrent's links in a subfolder: the folder it was made from verifies, and a download makes them as libtorrent does",
    async () => {
      const src = path.join(dir, 'links');
      await mkdir(path.join(src, 'sub', 'deep'), { recursive: true });
      await writeFile(path.join(src, 'a.bin'), randomBytesSeeded(100_001, 'la'));
      await writeFile(path.join(src, 'sub', 'b.bin'), randomBytesSeeded(300_007, 'lb'));
      await writeFile(path.join(src, 'sub', 'deep', 'c.bin'), randomBytesSeeded(9, 'lc'));
      await symlink('b.bin', path.join(src, 'sub', 'l'));
      await symlink('deep', path.join(src, 'sub', 'dl'));
      const out = path.join(dir, 'links.torrent');
      // libtorrent 2.0 writes each target from the link's folder (`[b.bin]`), not the top.
      run(PYTHON, [
        '-c',
        `
import sys, libtorrent as lt
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1], lambda p: True, lt.create_torrent.symlinks)
ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.symlinks | lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, sys.argv[2])
open(sys.argv[3], 'wb').write(lt.bencode(ct.generate()))
`,
        src,
        dir,
        out,
      ]);
      const verify = await runCli(['verify', out, '-o', src]);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      // Served by tdl from that folder, downloaded by tdl: the links lead where libtorrent's do.
      let kill: (() => Promise<void>) | undefined;
      const seed = spawnTdl(
        ['seed', out, '-o', src, '--port', '0', '--no-dht', '--json'],
        (c) => (kill = c),
      );
      try {
        const port = await seed.port();
        const dl = path.join(dir, 'links-dl');
        const r = await runCli([
          'download',
          out,
          '-o',
          dl,
          '--peer',
          `127.0.0.1:${port}`,
          '--no-dht',
          '--no-listen',
        ]);
        expect(r.code, r.stderr).toBe(0);
        expect(await readlink(path.join(dl, 'sub', 'l'))).toBe('b.bin');
        expect(await readlink(path.join(dl, 'sub', 'dl'))).toBe('deep');
        expect(await readFile(path.join(dl, 'sub', 'l'))).toEqual(randomBytesSeeded(300_007, 'lb'));
      } finally {
        await seed.interrupt();
        await kill?.();
      }
    },
    TIMEOUT_MS,
  );
});
