/**
 * Local disk faults, end to end in process: each ends with a message naming the problem and exit
 * code 6, and whatever verified data was already on disk stays there for the next run.
 *
 * Faults are real where a test can make them real (an output file replaced, truncated or removed
 * during the run; a folder made read-only with chmod when not running as root). Where it cannot
 * portably (a full disk; a read-only folder when running as root, which ignores permissions),
 * `node:fs/promises` is wrapped for tdl's own modules: writes under the test folder fail with
 * ENOSPC once a byte budget is spent (after a short write, as a real full disk does), and
 * creating, renaming or removing entries of one folder fails with EACCES. Storage also makes
 * small calls synchronously (see Inline in fs-util.ts) and keeps raw descriptors: `openSync`,
 * `open`, `writeSync`, `write`, `closeSync`, `close`, `renameSync` and `mkdirSync` of `node:fs`
 * are wrapped the same way.
 */
import { chmod, readdir, readFile, rename, truncate, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InterruptedError } from '../../src/errors.js';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { startFakeSeeder, type FakeSeeder } from '../helpers/fake-seeder.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

// The rules both mocks below apply (node:fs for storage's raw descriptors, node:fs/promises for
// the rest). Paths are absolute and made with path.join, so plain '/' tests are enough.
const faults = vi.hoisted(() => {
  const f = {
    /** Files under this folder are subject to `spaceLeft`. */
    root: '',
    /** Bytes that may still be written under `root` before writes fail with ENOSPC. */
    spaceLeft: Infinity,
    /** A folder in which entries cannot be created, renamed or removed (EACCES). */
    readOnlyDir: '',
    /** Descriptors of files opened under `root` (for the synchronous writes). */
    fds: new Set<number>(),
    /** The path each of `fds` was opened at. */
    paths: new Map<number, string>(),
    /** Writes to a file whose path ends so fail at once with ENOSPC, nothing written. */
    fullFor: '',
    /** A write to `fd` that `fullFor` refuses. */
    refuses: (fd: number): boolean => f.fullFor !== '' && !!f.paths.get(fd)?.endsWith(f.fullFor),
    under: (p: unknown): boolean => f.root !== '' && String(p).startsWith(`${f.root}/`),
    inReadOnly: (p: unknown): boolean => {
      const s = String(p);
      return f.readOnlyDir !== '' && s.slice(0, s.lastIndexOf('/')) === f.readOnlyDir;
    },
    /**
     * Bytes a write of `length` may make, taken from `spaceLeft` before it waits (concurrent
     * writes share the budget); null when none is left. `giveBack` what it did not write.
     */
    reserve: (length: number): number | null => {
      if (f.spaceLeft <= 0) return null;
      const n = Math.min(length, f.spaceLeft);
      f.spaceLeft -= n;
      return n;
    },
    giveBack: (n: number): void => {
      f.spaceLeft += n;
    },
  };
  return f;
});
const { simulated } = vi.hoisted(() => ({
  simulated: (code: 'ENOSPC' | 'EACCES', syscall: string, p?: unknown) =>
    Object.assign(new Error(`${code}: simulated ${syscall}${p ? ` '${String(p)}'` : ''}`), {
      code,
      syscall,
      path: p === undefined ? undefined : String(p),
    }),
}));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const { under, inReadOnly } = faults;
  const writeSync = ((
    fd: number,
    buf: Buffer,
    offset: number,
    length: number,
    position: number,
  ) => {
    if (!faults.fds.has(fd)) return real.writeSync(fd, buf, offset, length, position);
    if (faults.refuses(fd)) throw simulated('ENOSPC', 'write');
    const n = faults.reserve(length);
    if (n === null) throw simulated('ENOSPC', 'write');
    const written = real.writeSync(fd, buf, offset, n, position);
    faults.giveBack(n - written);
    return written;
  }) as typeof real.writeSync;
  const renameSync = (a: string, b: string) => {
    if (inReadOnly(a) || inReadOnly(b)) throw simulated('EACCES', 'rename', a);
    return real.renameSync(a, b);
  };
  const mkdirSync = ((p: string, o?: Parameters<typeof real.mkdirSync>[1]) => {
    if (inReadOnly(p) && !real.existsSync(p)) throw simulated('EACCES', 'mkdir', p);
    return real.mkdirSync(p, o);
  }) as typeof real.mkdirSync;
  // Storage opens, writes and closes raw descriptors (inline, or through the callback API).
  const refused = (p: unknown, flags: unknown) =>
    inReadOnly(p) &&
    typeof flags === 'number' &&
    (flags & real.constants.O_CREAT) !== 0 &&
    !real.existsSync(String(p));
  const openSync = ((p: string, flags: number, mode?: number) => {
    if (refused(p, flags)) throw simulated('EACCES', 'open', p);
    const fd = real.openSync(p, flags, mode);
    if (under(p)) faults.fds.add(fd);
    if (under(p)) faults.paths.set(fd, String(p));
    return fd;
  }) as typeof real.openSync;
  const open = ((
    p: string,
    flags: number,
    mode: number,
    cb: (e: NodeJS.ErrnoException | null, fd: number) => void,
  ) => {
    if (refused(p, flags)) return process.nextTick(cb, simulated('EACCES', 'open', p), -1);
    real.open(p, flags, mode, (e, fd) => {
      if (!e && under(p)) faults.fds.add(fd);
      if (!e && under(p)) faults.paths.set(fd, String(p));
      cb(e, fd);
    });
  }) as unknown as typeof real.open;
  const closeSync = (fd: number) => {
    faults.fds.delete(fd);
    real.closeSync(fd);
  };
  const close = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    faults.fds.delete(fd);
    real.close(fd, cb);
  }) as typeof real.close;
  const write = ((
    fd: number,
    buf: Buffer,
    offset: number,
    length: number,
    position: number,
    cb: (e: NodeJS.ErrnoException | null, n: number) => void,
  ) => {
    if (!faults.fds.has(fd)) return real.write(fd, buf, offset, length, position, cb);
    if (faults.refuses(fd)) return process.nextTick(cb, simulated('ENOSPC', 'write'), 0);
    const n = faults.reserve(length);
    if (n === null) return process.nextTick(cb, simulated('ENOSPC', 'write'), 0);
    real.write(fd, buf, offset, n, position, (e, written) => {
      faults.giveBack(n - (e ? 0 : written));
      cb(e, written);
    });
  }) as unknown as typeof real.write;
  const mod = {
    ...real,
    writeSync,
    renameSync,
    mkdirSync,
    openSync,
    open,
    closeSync,
    close,
    write,
  };
  return { ...mod, default: mod };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const { constants } = await import('node:fs');
  type Handle = Awaited<ReturnType<typeof real.open>>;
  const fault = simulated;
  const { under, inReadOnly } = faults;
  const exists = (p: unknown) =>
    real.lstat(String(p)).then(
      () => true,
      () => false,
    );
  const wrap = (h: Handle): Handle =>
    new Proxy(h, {
      get(target, key) {
        if (key === 'write') {
          return async (buf: Buffer, offset: number, length: number, position: number) => {
            const n = faults.reserve(length);
            if (n === null) throw fault('ENOSPC', 'write');
            const r = await target.write(buf, offset, n, position);
            faults.giveBack(n - r.bytesWritten);
            return r;
          };
        }
        if (key === 'close') {
          const fd = target.fd;
          return () => {
            faults.fds.delete(fd);
            return target.close();
          };
        }
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const open = async (
    p: Parameters<typeof real.open>[0],
    flags?: string | number,
    mode?: number,
  ) => {
    if (
      inReadOnly(p) &&
      typeof flags === 'number' &&
      flags & constants.O_CREAT &&
      !(await exists(p))
    )
      throw fault('EACCES', 'open', p);
    const h = await real.open(p, flags, mode);
    if (!under(p)) return h;
    faults.fds.add(h.fd);
    return wrap(h);
  };
  const mkdir = async (p: string, o?: Parameters<typeof real.mkdir>[1]) => {
    if (inReadOnly(p) && !(await exists(p))) throw fault('EACCES', 'mkdir', p);
    return real.mkdir(p, o);
  };
  const renameW = async (a: string, b: string) => {
    if (inReadOnly(a) || inReadOnly(b)) throw fault('EACCES', 'rename', a);
    return real.rename(a, b);
  };
  const rm = async (p: string, o?: Parameters<typeof real.rm>[1]) => {
    if (inReadOnly(p) && (await exists(p))) throw fault('EACCES', 'rm', p);
    return real.rm(p, o);
  };
  const mod = { ...real, open, mkdir, rename: renameW, rm };
  return { ...mod, default: mod };
});

const PIECE = 32 * 1024;
const WAIT_MS = 15_000;
const asRoot = process.getuid?.() === 0;

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-faults-'));
  faults.root = dir;
});

afterEach(async () => {
  faults.root = '';
  faults.spaceLeft = Infinity;
  faults.readOnlyDir = '';
  faults.fullFor = '';
  // Descriptor numbers are reused by the next test.
  faults.fds.clear();
  faults.paths.clear();
  for (const c of closers.splice(0)) await c().catch(() => {});
  await chmodTree(dir).catch(() => {});
  await cleanup();
});

async function chmodTree(d: string): Promise<void> {
  if (!existsSync(d)) return;
  await chmod(d, 0o755);
  for (const e of await readdir(d, { withFileTypes: true })) {
    if (e.isDirectory()) await chmodTree(path.join(d, e.name));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** A folder that tdl cannot write in: chmod 555, or simulated when running as root. */
async function makeReadOnly(d: string): Promise<void> {
  if (asRoot) faults.readOnlyDir = d;
  else await chmod(d, 0o555);
}

async function makeWritable(d: string): Promise<void> {
  faults.readOnlyDir = '';
  if (!asRoot) await chmod(d, 0o755);
}

const readOnlyHow = asRoot ? 'simulated, running as root' : 'chmod 555';

async function setup(o: { rate?: number; size?: number; seed: number }) {
  const data = randomBytesSeeded(o.size ?? 2 * 1024 * 1024, o.seed);
  const t = makeTorrent({ name: 'big.bin', pieceLength: PIECE, files: { data } });
  const s = await startFakeSeeder({
    infoHash: t.infoHash,
    data,
    pieceLength: PIECE,
    rateLimit: o.rate,
  });
  closers.push(() => s.close());
  const tp = path.join(dir, 't.torrent');
  await writeFile(tp, t.torrent);
  const outDir = path.join(dir, 'out');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(outDir);
  const out = path.join(outDir, 'big.bin');
  const args = (...more: string[]) => [
    'download',
    tp,
    '-o',
    out,
    '--peer',
    `127.0.0.1:${s.port}`,
    ...more,
  ];
  return { t, s, tp, outDir, out, part: `${out}.part`, args };
}

async function valid(tp: string, out: string): Promise<number> {
  const r = await runCli(['verify', tp, '-o', out, '--json']);
  return r.events.find((e) => e['event'] === 'verified')!['valid'] as number;
}

/** Resume with the fault gone: only what is missing is fetched, and the result is right. */
async function resumeAndCheck(
  x: { t: MadeTorrent; s: FakeSeeder; tp: string; out: string; args: (...m: string[]) => string[] },
  validBefore: number,
): Promise<void> {
  const before = x.s.served;
  const r = await withTimeout(runCli(x.args('--json')), 'resumed download');
  expect(r.code, r.stderr).toBe(0);
  expect(r.events.find((e) => e['event'] === 'started')!['present']).toBe(validBefore);
  expect(x.s.served - before).toBe(x.t.data.length - validBefore);
  expect((await readFile(x.out)).equals(x.t.data)).toBe(true);
}

async function interruptAfter(args: string[], s: FakeSeeder, bytes: number): Promise<CliResult> {
  const ctl = new AbortController();
  const poll = setInterval(() => {
    if (s.served >= bytes) ctl.abort(new InterruptedError('SIGINT'));
  }, 5);
  try {
    return await withTimeout(runCli(args, { signal: ctl.signal }), 'interrupted download');
  } finally {
    clearInterval(poll);
  }
}

describe('output folder not writable', () => {
  it(`fails with exit 6 before fetching anything (${readOnlyHow})`, async () => {
    const x = await setup({ seed: 1 });
    await makeReadOnly(x.outDir);
    const r = await runCli(x.args());
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/permission denied/);
    expect(r.stderr).toContain(x.outDir);
    expect(x.s.served).toBe(0);
    await makeWritable(x.outDir);
    expect(await readdir(x.outDir)).toEqual([]);
  });

  it(`with a partial download in it: exit 6, the verified data stays for later (${readOnlyHow})`, async () => {
    const x = await setup({ seed: 2, rate: 2 * 1024 * 1024 });
    expect((await interruptAfter(x.args(), x.s, 700_000)).code).toBe(130);
    const before = await valid(x.tp, x.out);
    expect(before).toBeGreaterThan(0);
    await makeReadOnly(x.outDir);
    const served = x.s.served;
    const r = await runCli(x.args());
    expect(r.code).toBe(6);
    // The first file it would create there is its lock (then the resume file).
    expect(r.stderr).toMatch(/big\.bin\.tdl-(lock|resume).*permission denied/);
    expect(x.s.served).toBe(served);
    expect(await valid(x.tp, x.out)).toBe(before);
    await makeWritable(x.outDir);
    await resumeAndCheck(x, before);
  });
});

describe('disk full', () => {
  it('fails with exit 6 naming the file; the pieces written stay and the next run resumes (simulated ENOSPC)', async () => {
    const x = await setup({ seed: 3 });
    // Room for the resume file and about a third of the data.
    faults.spaceLeft = 700_000;
    const r = await withTimeout(runCli(x.args()), 'download on a full disk');
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/no space left on device/);
    expect(r.stderr).toContain(x.part);
    expect(existsSync(x.out)).toBe(false);
    faults.spaceLeft = Infinity;
    const before = await valid(x.tp, x.out);
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(700_000);
    await resumeAndCheck(x, before);
  });

  it('with --json, a last progress event gives the figures at the end, before the error', async () => {
    const x = await setup({ seed: 4 });
    faults.spaceLeft = 700_000;
    const r = await withTimeout(runCli(x.args('--json')), 'download on a full disk');
    expect(r.code).toBe(6);
    expect(r.events.slice(-2).map((e) => e['event'])).toEqual(['progress', 'error']);
    expect(r.events.at(-2)!['piecesDone']).toBeGreaterThan(0);
  });
});

describe('output changed by someone else during the run', () => {
  async function duringRun(seed: number, act: (part: string) => Promise<void>) {
    const x = await setup({ seed, rate: 1024 * 1024, size: 1536 * 1024 });
    const run = runCli(x.args());
    await until('some data', () => x.s.served >= 400_000 && existsSync(x.part));
    await act(x.part);
    const r = await withTimeout(run, 'download');
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(x.part);
    // Never passed for complete.
    expect(existsSync(x.out)).toBe(false);
    return r;
  }

  it('a replaced output file is detected: exit 6, naming the file', async () => {
    const r = await duringRun(4, async (part) => {
      await rename(part, `${part}.moved`);
      await writeFile(part, Buffer.alloc(1536 * 1024));
    });
    expect(r.stderr).toMatch(/was replaced/);
  });

  it('a truncated output file is detected: exit 6, naming the file', async () => {
    const r = await duringRun(5, (part) => truncate(part, 1000));
    expect(r.stderr).toMatch(/was truncated/);
  });

  it('a removed output file is detected: exit 6, naming the file', async () => {
    const r = await duringRun(6, (part) => unlink(part));
    expect(r.stderr).toMatch(/was removed/);
  });

  // At the next checkpoint, not when the final name fails after the whole download.
  for (const [what, act] of [
    ['the file removed', (x: { part: string }) => unlink(x.part)],
    ['its folder moved', (x: { outDir: string }) => rename(x.outDir, `${x.outDir}.moved`)],
  ] as const) {
    it(`a single file that stays open, ${what}: the download stops early`, async () => {
      const size = 2 * 1024 * 1024;
      const x = await setup({ seed: 7, rate: 256 * 1024, size });
      const run = runCli(x.args());
      await until('some data', () => x.s.served >= 300_000 && existsSync(x.part));
      await act(x);
      const r = await withTimeout(run, 'download');
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toContain(`${x.part} was removed or moved during the download`);
      expect(x.s.served).toBeLessThan(size * 0.75);
    });
  }
});

describe('a boundary piece copied from the parts file, the copy failing', () => {
  it('is not recorded as on disk: the parts file deleted, a later run fetches it again', async () => {
    // f1 ends inside piece 1, whose other bytes are f2's.
    const files = [50_000, 70_000, 100_000].map((n, i) => ({
      path: [`f${i + 1}.bin`],
      data: randomBytesSeeded(n, `copy-fails-${i}`),
    }));
    const t = makeTorrent({ name: 'three', pieceLength: PIECE, files });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const out = path.join(dir, 'three');
    const seeder = async (pieces?: (i: number) => boolean) => {
      const s = await startFakeSeeder({
        infoHash: t.infoHash,
        data: t.data,
        pieceLength: PIECE,
        pieces,
      });
      closers.push(() => s.close());
      return ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht'];
    };
    // 1. The whole torrent without pieces 1 and 6: f2.bin.part holds a hole in piece 1's place.
    const r1 = await runCli([
      'download',
      tp,
      '-o',
      out,
      '--timeout',
      '2',
      ...(await seeder((i) => i !== 1 && i !== 6)),
    ]);
    expect(r1.code, r1.stderr).toBe(5);
    // 2. f1 alone: piece 1 fetched, its f2 bytes kept in three.tdl-parts only.
    const r2 = await runCli(['download', tp, '-o', out, '--select', '1', ...(await seeder())]);
    expect(r2.code, r2.stderr).toBe(0);
    // 3. Every file (piece 6 still to fetch: a resume file is kept), the disk full for
    //    f2.bin.part: the copy into it fails before it writes a byte, after the first checkpoint.
    faults.fullFor = 'f2.bin.part';
    const r3 = await runCli(['download', tp, '-o', out, ...(await seeder())]);
    expect(r3.code, r3.stderr).toBe(6);
    expect(r3.stderr).toMatch(/no space left on device/);
    faults.fullFor = '';
    // 4. The parts file deleted (the README allows it), then every file again: f2's bytes of
    //    piece 1 come from the seeder, not from a record that the file held them.
    await unlink(`${out}.tdl-parts`);
    const r4 = await runCli(['download', tp, '-o', out, ...(await seeder())]);
    expect(r4.code, r4.stderr).toBe(0);
    for (const f of files) {
      expect((await readFile(path.join(out, ...f.path))).equals(f.data), f.path[0]).toBe(true);
    }
  });
});
