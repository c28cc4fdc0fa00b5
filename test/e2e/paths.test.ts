/**
 * Path safety through the real CLI: a torrent whose file paths would leave the output, or collide
 * on disk, or go through a symlink already in the output tree, is refused with exit 3 before
 * anything is created. A property test then checks the parser's rule on arbitrary names: what it
 * accepts always lands strictly inside the output, on a path of its own.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TdlError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { MAX_PATH_DEPTH } from '../../src/metainfo/paths.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';
import { assertBuilt, MAIN } from '../helpers/tdl-process.js';
import {
  makeTorrent,
  randomBytesSeeded,
  type MadeTorrent,
  type MakeTorrentOptions,
} from '../helpers/torrent.js';

let dir: string;
let out: string;
let outside: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-paths-'));
  out = path.join(dir, 'out');
  outside = path.join(dir, 'outside');
  await mkdir(out);
  await mkdir(outside);
});

afterEach(async () => {
  await cleanup();
});

/** Every file and folder under `root`, relative, sorted (symlinks are listed, not followed). */
async function tree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries.map(String).sort();
}

/**
 * Runs `tdl download` on a torrent built from `o`, against a peer that does not exist (nothing
 * may be needed from it), and checks the refusal: exit 3, one line naming the field, and no
 * change anywhere under the test folder.
 */
/** Downloads `t` (16 KiB pieces) into `out` from a fake seeder: no message, exit 0. */
async function downloadCleanly(t: MadeTorrent): Promise<void> {
  const seeder = await startFakeSeeder({ infoHash: t.infoHash, data: t.data, pieceLength: 16384 });
  try {
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const r = await runCli(['download', tp, '-o', out, '--peer', `127.0.0.1:${seeder.port}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  } finally {
    await seeder.close();
  }
}

async function expectRefused(
  o: Omit<MakeTorrentOptions, 'pieceLength'>,
  message: RegExp,
  target = out,
  code = 3,
): Promise<string> {
  const t = makeTorrent({ pieceLength: 16384, ...o });
  const tp = path.join(dir, 't.torrent');
  await writeFile(tp, t.torrent);
  const before = await tree(dir);
  const r = await runCli(['download', tp, '-o', target, '--peer', '127.0.0.1:9', '--timeout', '5']);
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(message);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(await tree(dir)).toEqual(before);
  return r.stderr;
}

const x = Buffer.from('x');
const multi = (...paths: string[][]): Omit<MakeTorrentOptions, 'pieceLength'> => ({
  name: 'multi',
  files: paths.map((p) => ({ path: p, data: x })),
});

describe('unsafe names are refused with exit 3 before anything is created', () => {
  const components: [label: string, components: string[], message: RegExp][] = [
    ['a ".." component', ['..', 'escaped.txt'], /info\.files\[0\]\.path\[0\]: .*only dots/],
    ['".." deeper down', ['a', '..', '..', 'escaped.txt'], /only dots/],
    ['a "." component', ['.', 'x'], /only dots/],
    ['a "..." component', ['...'], /only dots/],
    ['an absolute path in one component', ['/etc/passwd'], /path separator/],
    ['an absolute path split in components', ['', 'etc', 'passwd'], /empty path component/],
    ['a slash inside a component', ['a/../../b'], /path separator/],
    ['a backslash', ['..\\..\\escaped.txt'], /path separator/],
    ['a drive letter', ['C:', 'Windows', 'evil.dll'], /drive letter/],
    ['a drive-relative name', ['c:evil.txt'], /drive letter/],
    ['a drive-absolute name', ['C:\\evil.txt'], /path separator|drive letter/],
    ['an empty component', ['a', '', 'b'], /empty path component/],
    ['NUL inside a name', ['ok.txt\u0000.exe'], /contains NUL/],
    ['NUL alone', ['\u0000'], /contains NUL/],
  ];
  for (const [label, comps, message] of components) {
    it(`a file path with ${label}`, async () => {
      await expectRefused(multi(comps), message);
    });
  }

  it('the same rules for the torrent name: "..", "/", "\\", "", "C:", NUL', async () => {
    for (const name of ['..', '.', '/etc', 'a/b', 'a\\b', '', 'C:', 'n\u0000ul']) {
      await expectRefused({ name, files: { data: x } }, /info\.name/);
    }
  });

  it('an empty path list, and a path deeper than MAX_PATH_DEPTH', async () => {
    await expectRefused(multi([]), /info\.files\[0\]\.path: is empty/);
    const deep = Array.from({ length: MAX_PATH_DEPTH + 1 }, () => 'd');
    await expectRefused(multi(deep), new RegExp(`more than ${MAX_PATH_DEPTH} components`));
  });

  it('a refused torrent does not create the -o target when it does not exist yet', async () => {
    const target = path.join(dir, 'new-folder');
    await expectRefused(multi(['..', 'x']), /only dots/, target);
    expect(existsSync(target)).toBe(false);
  });

  it('names are compared after NFC: "café" precomposed and decomposed collide', async () => {
    const nfc = 'caf\u00e9';
    const nfd = 'cafe\u0301';
    expect(nfc).not.toBe(nfd);
    await expectRefused(multi([nfc], [nfd]), /same path as info\.files\[0\]\.path/);
    await expectRefused(multi(['d', nfd, 'a'], ['d', nfc, 'a']), /same path/);
  });

  it('two files on the same path, and a file that is also a folder of another', async () => {
    await expectRefused(multi(['a', 'b'], ['a', 'b']), /same path/);
    await expectRefused(multi(['a'], ['a', 'b']), /is inside a, which is also a file/);
    await expectRefused(multi(['a', 'b', 'c'], ['a', 'b']), /is inside a\/b, which is also a file/);
  });

  it('a bad path.utf-8 fallback is checked like the name itself', async () => {
    // The raw name is not UTF-8, so the .utf-8 variant is used: it must pass the same checks.
    const info = {
      name: Buffer.from('multi'),
      'piece length': 16384,
      pieces: Buffer.alloc(20),
      files: [{ length: 1, path: [Buffer.from([0xff, 0xfe])], 'path.utf-8': ['..'] }],
    };
    const tp = path.join(dir, 'u.torrent');
    await writeFile(tp, encode({ info }));
    const r = await runCli(['download', tp, '-o', out, '--peer', '127.0.0.1:9']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/info\.files\[0\]\.path\[0\]: .*only dots/);
    expect(await readdir(out)).toEqual([]);
  });
});

describe('names that only look dangerous are accepted', () => {
  it('files named "..hidden", "...x", "a..b" and "C" download normally', async () => {
    const files = [
      { path: ['..hidden'], data: Buffer.from('one') },
      { path: ['d', '...x'], data: Buffer.from('two') },
      { path: ['a..b'], data: Buffer.from('three') },
      { path: ['C'], data: Buffer.from('four') },
    ];
    const t = makeTorrent({ name: 'multi', pieceLength: 16384, files });
    await downloadCleanly(t);
    for (const f of files) {
      expect(await readFile(path.join(out, 'multi', ...f.path), 'utf8')).toBe(String(f.data));
    }
  });
  it('a single file named with 255 bytes downloads; nothing of tdl is left beside it', async () => {
    // Its lock, resume file and working name are all cut to fit (withSuffix), and so must be
    // the files written before being linked or renamed to them.
    const name = `${'é'.repeat(127)}x`;
    const data = randomBytesSeeded(100_000, 'long-name');
    const t = makeTorrent({ name, pieceLength: 16384, files: { data } });
    await downloadCleanly(t);
    expect((await readFile(path.join(out, name))).equals(data)).toBe(true);
    expect(await readdir(out)).toEqual([name]);
  });

  it('a file "x" beside a folder "x.part" of the same torrent downloads normally', async () => {
    // x's working name cannot be x.part: that is a folder of the torrent.
    const files = [
      { path: ['x'], data: Buffer.from('one') },
      { path: ['x.part', 'y'], data: Buffer.from('two') },
      { path: ['x.part', 'y.part', 'z'], data: Buffer.from('three') },
    ];
    const t = makeTorrent({ name: 'multi', pieceLength: 16384, files });
    await downloadCleanly(t);
    for (const f of files) {
      expect(await readFile(path.join(out, 'multi', ...f.path), 'utf8')).toBe(String(f.data));
    }
    expect(await tree(path.join(out, 'multi'))).toEqual(
      ['x', 'x.part', 'x.part/y', 'x.part/y.part', 'x.part/y.part/z'].map((p) =>
        p.split('/').join(path.sep),
      ),
    );
  });
});

describe('-o with a trailing slash', () => {
  it('names a folder: the single file goes inside it, created, and the same -o finds it again', async () => {
    const t = makeTorrent({ name: 'one.bin', pieceLength: 16384, files: { data: x } });
    const seeder = await startFakeSeeder({
      infoHash: t.infoHash,
      data: t.data,
      pieceLength: 16384,
    });
    try {
      const tp = path.join(dir, 't.torrent');
      await writeFile(tp, t.torrent);
      const target = path.join(dir, 'new') + '/';
      const peer = ['--peer', `127.0.0.1:${seeder.port}`, '--no-dht', '--port', '0'];
      const r = await runCli(['download', tp, '-o', target, ...peer]);
      expect(r.code, r.stderr).toBe(0);
      // It made a file named `new` before.
      expect((await readFile(path.join(dir, 'new', 'one.bin'))).equals(x)).toBe(true);
      const v = await runCli(['verify', tp, '-o', target]);
      expect(v.code).toBe(0);
      expect(v.stdout).toContain(`output:   ${path.join(dir, 'new', 'one.bin')}\n`);
    } finally {
      await seeder.close();
    }
  });
});

describe('-o through a file', () => {
  it('names the file in the way (exit 6), as mkdir -p would, for download and verify', async () => {
    const t = makeTorrent({ name: 'one.bin', pieceLength: 16384, files: { data: x } });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const notes = path.join(dir, 'notes.txt');
    await writeFile(notes, 'mine');
    const out = path.join(notes, 'sub', 'one.bin');
    for (const args of [['download', '--peer', '127.0.0.1:9', '--no-dht'], ['verify']]) {
      const r = await runCli([args[0]!, tp, '-o', out, ...args.slice(1)]);
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toBe(`tdl: output ${out}: ${notes} is a file, not a folder\n`);
    }
    expect(await readFile(notes, 'utf8')).toBe('mine');
  });
});

describe('a path longer than the system takes', () => {
  it('exit 6 before anything is created, the folders above -o included', async () => {
    // 17 folders of 250 bytes: each name is fine, the whole path is over 4 KiB.
    const deep = [...Array.from({ length: 17 }, (_, i) => `${i}`.padEnd(250, 'x')), 'f'];
    const t = makeTorrent({ name: 'p', pieceLength: 16384, files: [{ path: deep, data: x }] });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const before = await tree(dir);
    const target = path.join(dir, 'new', 'deeper') + path.sep;
    const r = await runCli(['download', tp, '-o', target, '--peer', '127.0.0.1:9', '--no-dht']);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/bytes, longer than the 4095 the system takes: give a shorter -o\n$/);
    expect(await tree(dir)).toEqual(before);
  });
});

describe('a current folder that was deleted', () => {
  it('is said, exit 6, for a relative -o or none (not an internal error)', async () => {
    assertBuilt();
    const t = makeTorrent({ name: 'one.bin', pieceLength: 16384, files: { data: x } });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    for (const args of [
      ['download', tp, '--peer', '127.0.0.1:9', '--no-dht', '--no-listen'],
      ['verify', tp, '-o', 'one.bin'],
      ['create', tp, '-o', 'x.torrent'],
    ]) {
      // The shell enters the folder, removes it, then runs tdl there.
      const quoted = args.map((a) => `'${a}'`).join(' ');
      const r = spawnSync(
        '/bin/sh',
        [
          '-c',
          `mkdir gone && cd gone && rmdir ../gone && exec '${process.execPath}' '${MAIN}' ${quoted}`,
        ],
        { cwd: dir, encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' },
      );
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(6);
      expect(r.stderr).toBe(
        'tdl: the current folder no longer exists (it was deleted or moved): cd to another one, or give absolute paths\n',
      );
    }
  });

  it('a current folder whose path is longer than the system allows: exit 2, said', async () => {
    assertBuilt();
    const t = makeTorrent({ name: 'one.bin', pieceLength: 16384, files: { data: x } });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    // 22 folders of 200 bytes: past PATH_MAX (4096), where getcwd fails with ERANGE.
    const deep = `d=$(printf 'a%.0s' $(seq 200)); for i in $(seq 22); do mkdir -p $d && cd $d; done`;
    try {
      for (const args of [
        ['verify', tp, '-o', 'one.bin'],
        ['create', tp, '-o', 'x.torrent'],
      ]) {
        const quoted = args.map((a) => `'${a}'`).join(' ');
        const r = spawnSync(
          '/bin/bash',
          ['-c', `${deep} && '${process.execPath}' '${MAIN}' ${quoted}`],
          {
            cwd: dir,
            encoding: 'utf8',
            timeout: 15_000,
            killSignal: 'SIGKILL',
          },
        );
        expect(r.status, `${args[0]}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toBe(
          "tdl: the current folder's path is longer than the system allows, so tdl cannot name what is in it: cd to a shorter one, or give absolute paths\n",
        );
      }
    } finally {
      // rm walks a tree too deep for one path (the fixture's own cleanup cannot).
      spawnSync('rm', ['-rf', path.join(dir, 'a'.repeat(200))]);
    }
  });
});

describe('symlinks already in the output tree are never written through', () => {
  it('a folder of the torrent that is a symlink to outside', async () => {
    await mkdir(path.join(out, 'multi'));
    await symlink(outside, path.join(out, 'multi', 'sub'));
    // The disk's state, not the torrent's: exit 6, as verify and seed say of it.
    await expectRefused(
      multi(['sub', 'x.bin']),
      /^tdl: refusing to write through the symbolic link .*multi\/sub: tdl never writes a torrent's folders through a link \(move it away, or choose another -o\)\n$/,
      out,
      6,
    );
    expect(await readdir(outside)).toEqual([]);
  });

  it("the torrent's top folder itself as a symlink to outside", async () => {
    await symlink(outside, path.join(out, 'multi'));
    await expectRefused(
      multi(['x.bin']),
      /^tdl: refusing to write through the symbolic link/,
      out,
      6,
    );
    expect(await readdir(outside)).toEqual([]);
  });

  it('a single file whose name is a symlink to a file outside', async () => {
    const victim = path.join(outside, 'victim.txt');
    await writeFile(victim, 'precious');
    await symlink(victim, path.join(out, 'one.bin'));
    await expectRefused(
      { name: 'one.bin', files: { data: x } },
      /^tdl: refusing to write through the symbolic link .*one\.bin: .* files through a link/,
      out,
      6,
    );
    expect(await readFile(victim, 'utf8')).toBe('precious');
  });

  it('a symlink at the working name (.part) is refused in the same words', async () => {
    const victim = path.join(outside, 'victim.txt');
    await writeFile(victim, 'precious');
    await symlink(victim, path.join(out, 'one.bin.part'));
    await expectRefused(
      { name: 'one.bin', files: { data: x } },
      /^tdl: refusing to write through the symbolic link .*one\.bin\.part: .* files through a link \(move it away, or choose another -o\)$/m,
      out,
      6,
    );
    expect(await readFile(victim, 'utf8')).toBe('precious');
  });

  it('a dangling symlink is not followed to create its target', async () => {
    const target = path.join(outside, 'created-through-link');
    await mkdir(path.join(out, 'multi'));
    await symlink(target, path.join(out, 'multi', 'f.bin'));
    await expectRefused(multi(['f.bin']), /refusing to write through the symbolic link/, out, 6);
    expect(existsSync(target)).toBe(false);
  });
});

// procfs answers mkdir with ENOENT under a folder that exists: Node's recursive mkdir then
// retries for good, at full CPU, and tdl hung past --timeout (the real program, killed if so).
describe.runIf(existsSync('/proc/self/status'))('folders that cannot be made in /proc', () => {
  it('an -o, or an XDG_CACHE_HOME for -o -, there: exit 6 at once, naming the folder', async () => {
    assertBuilt();
    const t = makeTorrent({ name: 'f.bin', pieceLength: 16384, files: { data: x } });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const tdl = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [MAIN, 'download', tp, '--peer', '127.0.0.1:9', ...args], {
        encoding: 'utf8',
        timeout: 15_000,
        killSignal: 'SIGKILL',
        env: { ...process.env, DEBUG: '', ...env },
      });
    const o = tdl(['-o', '/proc/self/tdl-no/out', '--no-dht', '--port', '0']);
    expect(o.status, o.stderr).toBe(6);
    expect(o.stderr).toMatch(
      /^tdl: cannot create folder \/proc\/self\/tdl-no: no such file or directory/,
    );
    const cache = tdl(['-o', '-', '--no-dht', '--port', '0'], { XDG_CACHE_HOME: '/proc/self' });
    expect(cache.status, cache.stderr).toBe(6);
    expect(cache.stdout).toBe('');
    expect(cache.stderr).toMatch(/^tdl: cannot create the working folder \/proc\/self\/tdl\//);
  }, 40_000);
});

describe('property: whatever the parser accepts stays inside the output', () => {
  const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 7;
  const numRuns = process.env['FUZZ_RUNS'] !== undefined ? Number(process.env['FUZZ_RUNS']) : 3000;

  // Components made of the characters that matter: dots, separators, drive colons, NUL, and
  // letters with precomposed and decomposed accents.
  const char = fc.constantFrom(
    '.',
    '.',
    '/',
    '\\',
    ':',
    'C',
    'a',
    '\u0000',
    ' ',
    '\u00e9',
    'e\u0301',
    '\u2024',
    '\uff0e',
  );
  const component = fc.array(char, { maxLength: 5 }).map((cs) => cs.join(''));
  const filePath = fc.array(component, { minLength: 0, maxLength: 4 });

  it('parseTorrent: a typed error, or file paths strictly inside the root, distinct and not nested', () => {
    const root = path.resolve('/srv/out/multi');
    fc.assert(
      fc.property(fc.array(filePath, { minLength: 1, maxLength: 3 }), (paths) => {
        const info = {
          name: 'multi',
          'piece length': 16384,
          pieces: Buffer.alloc(20),
          files: paths.map((p) => ({ length: 1, path: p })),
        };
        let files: string[][];
        try {
          files = parseTorrent(encode({ info })).files.map((f) => f.path);
        } catch (e) {
          if (e instanceof TdlError && e.kind === 'invalid-torrent') return;
          throw e;
        }
        const joined = files.map((f) => path.resolve(root, ...f));
        for (const [i, p] of joined.entries()) {
          const rel = path.relative(root, p);
          const escapes = rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
          expect(escapes || rel === '').toBe(false);
          // One component on disk per component in the torrent: nothing was swallowed or added.
          expect(rel.split(path.sep)).toEqual(files[i]);
          for (const c of files[i]!) {
            expect(c).toBe(c.normalize('NFC'));
            expect(/^\.+$/.test(c) || /[/\\\0]/.test(c) || /^[A-Za-z]:/.test(c)).toBe(false);
          }
        }
        // No two files share a path, and no file is a folder of another.
        for (const a of joined) {
          for (const b of joined) {
            if (a !== b) expect(b.startsWith(a + path.sep)).toBe(false);
          }
        }
        expect(new Set(joined).size).toBe(joined.length);
      }),
      { seed, numRuns },
    );
  });
});
