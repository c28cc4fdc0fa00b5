/**
 * Resume and crash safety, end to end: the built CLI in a child process is killed with SIGKILL
 * at random points of a throttled multi-file download, then run again, several times; Ctrl-C;
 * resume files that are truncated, corrupt, from another torrent, or contradicted by the files;
 * another torrent's data at the output; `tdl verify` on complete, partial and corrupted output.
 *
 * Needs `npm run build` (npm test builds first).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  statSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import {
  lstat,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InterruptedError } from '../../src/errors.js';
import { encodeResume, decodeResume } from '../../src/storage/resume.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { checkEvent } from '../helpers/events-schema.js';
import { startFakeSeeder, type FakeSeeder } from '../helpers/fake-seeder.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'bundle', 'main.js');
const PIECE = 32 * 1024;
/** Bytes per second the seeder serves: a full download of the test torrent takes about 2 s. */
const RATE = 1536 * 1024;
const WAIT_MS = 15_000;

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void>)[] = [];
const children = new Set<ChildProcess>();

function newestMtime(d: string): number {
  let newest = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

beforeAll(() => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` does)`);
  }
  if (statSync(CLI).mtimeMs < newestMtime(path.join(ROOT, 'src'))) {
    throw new Error(`${CLI} is older than src/: run \`npm run build\` first`);
  }
});

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-resume-'));
});

afterEach(async () => {
  for (const c of children) killGroup(c);
  children.clear();
  for (const c of closers.splice(0)) await c().catch(() => {});
  await cleanup();
});

afterAll(() => {
  for (const c of children) killGroup(c);
});

function killGroup(c: ChildProcess): void {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

interface Child {
  proc: ChildProcess;
  events: Record<string, unknown>[];
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The built CLI in its own process group, its --json events parsed as they come. */
function spawnCli(args: string[]): Child {
  const proc = spawn(process.execPath, [CLI, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '' },
  });
  children.add(proc);
  const events: Record<string, unknown>[] = [];
  let out = '';
  let err = '';
  proc.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith('{'))
        events.push(checkEvent(JSON.parse(line) as Record<string, unknown>));
    }
  });
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  return { proc, events, stderr: () => err, exit };
}

async function withTimeout<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

const FILE_LENGTHS = [700_001, 1, 0, 1_300_000, 1_100_003];

/** A multi-file torrent whose pieces cross file boundaries, with an empty file. */
function multiFile(seed: number, name = 'multi'): MadeTorrent & { files: string[][] } {
  const files = [
    { path: ['a.bin'], data: randomBytesSeeded(700_001, `${seed}a`) },
    { path: ['sub', 'tiny'], data: randomBytesSeeded(1, `${seed}b`) },
    { path: ['sub', 'empty'], data: Buffer.alloc(0) },
    { path: ['sub', 'deep', 'c.bin'], data: randomBytesSeeded(1_300_000, `${seed}c`) },
    { path: ['d.bin'], data: randomBytesSeeded(1_100_003, `${seed}d`) },
  ];
  const t = makeTorrent({ name, pieceLength: PIECE, files });
  return { ...t, files: files.map((f) => f.path) };
}

async function seeder(t: MadeTorrent, rate = RATE): Promise<FakeSeeder> {
  const s = await startFakeSeeder({
    infoHash: t.infoHash,
    data: t.data,
    pieceLength: PIECE,
    rateLimit: rate,
  });
  closers.push(() => s.close());
  return s;
}

async function writeTorrent(t: MadeTorrent, name = 't.torrent'): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, t.torrent);
  return p;
}

function dlArgs(tp: string, out: string, s: FakeSeeder, ...more: string[]): string[] {
  return ['download', tp, '-o', out, '--peer', `127.0.0.1:${s.port}`, ...more];
}

/** What `tdl verify --json` says is valid on disk now. */
async function verifyJson(
  tp: string,
  out: string,
): Promise<{ r: CliResult; v: Record<string, unknown> }> {
  const r = await runCli(['verify', tp, '-o', out, '--json']);
  const v = r.events.find((e) => e['event'] === 'verified');
  if (!v) throw new Error(`verify gave no result (exit ${r.code}): ${r.stderr}`);
  return { r, v };
}

async function validOnDisk(tp: string, out: string): Promise<number> {
  return (await verifyJson(tp, out)).v['valid'] as number;
}

/** Run the download in process and press Ctrl-C once the seeder has served `bytes`. */
async function interruptAfter(args: string[], s: FakeSeeder, bytes: number): Promise<CliResult> {
  const ctl = new AbortController();
  const start = s.served;
  const poll = setInterval(() => {
    if (s.served - start >= bytes) ctl.abort(new InterruptedError('SIGINT'));
  }, 5);
  try {
    return await withTimeout(runCli(args, { signal: ctl.signal }), 'interrupted download');
  } finally {
    clearInterval(poll);
  }
}

async function expectFinal(t: MadeTorrent & { files: string[][] }, out: string): Promise<void> {
  let at = 0;
  const whole = t.data;
  const lengths = FILE_LENGTHS;
  for (const [i, f] of t.files.entries()) {
    const want = whole.subarray(at, at + lengths[i]!);
    at += lengths[i]!;
    const p = path.join(out, ...f);
    const got = await readFile(p);
    expect(got.equals(want), `${p} differs`).toBe(true);
    expect(existsSync(`${p}.part`), `${p}.part left behind`).toBe(false);
  }
  expect(existsSync(`${out}.tdl-resume`), 'resume file left behind').toBe(false);
}

/** Resume to the end in process; the seeder must serve exactly what was missing. */
/**
 * What a stopped run leaves of a one-file torrent of `data`: `part` as its working file, pieces
 * 0 to `recorded` - 1 recorded by a checkpoint that stamped it, and `journal` begun since.
 */
async function stoppedRun(
  name: string,
  data: Buffer,
  part: Buffer,
  recorded: number,
  journal: number[],
): Promise<{ t: MadeTorrent; out: string }> {
  const t = makeTorrent({ name, pieceLength: PIECE, files: { data } });
  const out = path.join(dir, name);
  await writeFile(`${out}.part`, part);
  const st = statSync(`${out}.part`, { bigint: true });
  const have = new Bitfield(t.pieces.length);
  for (let i = 0; i < recorded; i++) have.set(i);
  const state = {
    infoHash: t.infoHash,
    pieceLength: PIECE,
    totalLength: data.length,
    pieceCount: t.pieces.length,
    files: [{ size: Number(st.size), mtimeNs: st.mtimeNs, ino: st.ino }],
    have,
  };
  await writeFile(`${out}.tdl-resume`, encodeResume(state, journal));
  return { t, out };
}

async function resumeToEnd(tp: string, out: string, s: FakeSeeder, total: number) {
  const validBefore = await validOnDisk(tp, out);
  const before = s.served;
  const r = await withTimeout(runCli(dlArgs(tp, out, s, '--json')), 'resumed download');
  expect(r.code, r.stderr).toBe(0);
  const started = r.events.find((e) => e['event'] === 'started')!;
  const done = r.events.find((e) => e['event'] === 'done')!;
  // Everything valid on disk was found again, and only the rest was fetched.
  expect(started['present']).toBe(validBefore);
  expect(done['present']).toBe(validBefore);
  expect(s.served - before).toBe(total - validBefore);
  return { validBefore, served: s.served - before, r };
}

/** A small seeded PRNG (mulberry32): numbers in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('crash safety', () => {
  it('survives SIGKILL at random points, again and again, and fetches only what is missing', async () => {
    const t = multiFile(1);
    const total = t.data.length;
    const s = await seeder(t);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    const log: string[] = [];
    let finished = false;
    // Seeded kill points (FUZZ_SEED replays another run): a failure can be reproduced.
    const next = mulberry32(
      process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 1,
    );
    for (let round = 0; round < 5 && !finished; round++) {
      const valid = await validOnDisk(tp, out);
      const before = s.served;
      const c = spawnCli(dlArgs(tp, out, s, '--json'));
      await until('the started event', () => c.events.some((e) => e['event'] === 'started'));
      const started = c.events.find((e) => e['event'] === 'started')!;
      // Nothing verified on disk was lost to the previous kill.
      expect(started['present'], log.join('; ')).toBe(valid);
      const delay = 100 + Math.floor(next() * 700);
      log.push(`round ${round}: ${valid} valid, kill after ${delay} ms`);
      await sleep(delay);
      if (c.proc.exitCode === null) killGroup(c.proc);
      const ex = await withTimeout(c.exit, 'killed child');
      if (ex.code === 0) {
        finished = true;
        break;
      }
      expect(ex.signal, c.stderr()).toBe('SIGKILL');
      log.push(`served ${s.served - before}`);
      // A final name appears only once the whole torrent is verified (a kill may land while the
      // files are being renamed at the very end).
      const finalNames = t.files.filter((f) => f.length > 0 && existsSync(path.join(out, ...f)));
      if (finalNames.length > 0) {
        expect((await verifyJson(tp, out)).v['dataComplete'], log.join('; ')).toBe(true);
      }
      // The kill may also land after the resume file of a complete download was removed, just
      // before the exit: then every file has its final name.
      const done = finalNames.length === t.files.filter((f) => f.length > 0).length;
      expect(existsSync(`${out}.tdl-resume`) || done).toBe(true);
      if (done && !existsSync(`${out}.tdl-resume`)) {
        finished = true;
        break;
      }
    }
    if (!finished) await resumeToEnd(tp, out, s, total);
    await expectFinal(t, out);
    const kills = log.filter((l) => l.startsWith('served')).length;
    expect(kills, log.join('; ')).toBeGreaterThanOrEqual(2);
  }, 40_000);

  it('Ctrl-C saves a clean checkpoint; the next run reads nothing back and fetches the rest', async () => {
    const t = multiFile(2);
    const s = await seeder(t);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    const r = await interruptAfter(dlArgs(tp, out, s, '--json'), s, 1_200_000);
    expect(r.code).toBe(130);
    const raw = await readFile(`${out}.tdl-resume`);
    const d = decodeResume(raw);
    if (!d.ok) throw new Error(d.reason);
    expect(d.journal).toEqual([]);
    const valid = await validOnDisk(tp, out);
    expect(valid).toBeGreaterThan(0);
    // Every valid byte is recorded: after an orderly exit nothing needs re-hashing.
    let recorded = 0;
    for (let i = 0; i < t.pieces.length; i++)
      if (d.state.have.has(i)) recorded += t.pieces[i]!.length;
    expect(recorded).toBe(valid);
    const { served } = await resumeToEnd(tp, out, s, t.data.length);
    expect(served).toBeLessThan(t.data.length);
    await expectFinal(t, out);
  });
});

describe('resume file that cannot be believed', () => {
  async function partial(seed: number) {
    const t = multiFile(seed);
    const s = await seeder(t);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    const r = await interruptAfter(dlArgs(tp, out, s), s, 1_000_000);
    expect(r.code).toBe(130);
    return { t, s, tp, out, rf: `${out}.tdl-resume` };
  }

  it('ignores a truncated resume file and re-hashes', async () => {
    const { t, s, tp, out, rf } = await partial(3);
    const raw = await readFile(rf);
    await writeFile(rf, raw.subarray(0, Math.floor(raw.length / 2)));
    const { r } = await resumeToEnd(tp, out, s, t.data.length);
    await expectFinal(t, out);
    // Said, not silently: the data was hashed instead.
    const said = r.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(said).toContainEqual(
      expect.stringMatching(
        /multi\.tdl-resume not used \(.+\): what is on disk was checked by hashing instead$/,
      ),
    );
  });

  it('a .part edited in place whose modification time was set back is hashed again', async () => {
    const { t, s, tp, out } = await partial(6);
    const part = path.join(out, 'a.bin.part');
    const bytes = await readFile(part);
    // A piece of a.bin already on disk, as the seeder sent it.
    let piece = -1;
    for (let p = 0; (p + 1) * PIECE <= bytes.length && piece < 0; p++) {
      const range = [p * PIECE, (p + 1) * PIECE] as const;
      if (bytes.subarray(...range).equals(t.data.subarray(...range))) piece = p;
    }
    expect(piece).toBeGreaterThanOrEqual(0);
    const times = path.join(dir, 'times');
    await writeFile(times, '');
    execFileSync('touch', ['-r', part, times]); // keeps the time to the nanosecond
    const fh = await open(part, 'r+');
    await fh.write(Buffer.alloc(16, 0xee), 0, 16, piece * PIECE + 100);
    await fh.close();
    execFileSync('touch', ['-r', times, part]);
    await resumeToEnd(tp, out, s, t.data.length);
    await expectFinal(t, out);
  });

  it('a resume file that is a symbolic link is neither followed nor replaced: exit 6, said', async () => {
    const { t, s, tp, out, rf } = await partial(5);
    const target = path.join(dir, 'elsewhere');
    await rename(rf, target);
    await symlink(target, rf);
    const kept = await readFile(target);
    const before = s.served;
    const r = await runCli(dlArgs(tp, out, s));
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      `tdl: ${rf} is a symbolic link in the place of the resume file: refusing to follow it (move it away)\n`,
    );
    expect(s.served).toBe(before);
    // The link and its target are left as they were (a checkpoint replaced the link before).
    expect(await readlink(rf)).toBe(target);
    expect((await readFile(target)).equals(kept)).toBe(true);
    // Moved away, the run hashes what is on disk and finishes.
    await rm(rf);
    await resumeToEnd(tp, out, s, t.data.length);
    await expectFinal(t, out);
  });

  it('ignores a corrupt resume file that claims every piece', async () => {
    const { t, s, tp, out, rf } = await partial(4);
    const raw = await readFile(rf);
    const d = decodeResume(raw);
    if (!d.ok) throw new Error(d.reason);
    // Set every bit of the bitfield, leaving the checksum as it was.
    const bfAt = d.checkpointBytes - 20 - Math.ceil(t.pieces.length / 8);
    raw.fill(0xff, bfAt, d.checkpointBytes - 21);
    await writeFile(rf, raw);
    await resumeToEnd(tp, out, s, t.data.length);
    await expectFinal(t, out);
  });

  it("ignores another torrent's resume file even when it matches the files on disk", async () => {
    const { t, s, tp, out, rf } = await partial(5);
    const d = decodeResume(await readFile(rf));
    if (!d.ok) throw new Error(d.reason);
    // A well-formed file that claims everything, stamped with the files as they are, for
    // another info hash.
    const all = new Bitfield(t.pieces.length);
    for (let i = 0; i < t.pieces.length; i++) all.set(i);
    await writeFile(rf, encodeResume({ ...d.state, infoHash: Buffer.alloc(20, 0x5a), have: all }));
    await resumeToEnd(tp, out, s, t.data.length);
    await expectFinal(t, out);
  });

  it('re-hashes a file changed in place since the checkpoint (same size and inode)', async () => {
    const { t, s, tp, out, rf } = await partial(6);
    const d = decodeResume(await readFile(rf));
    if (!d.ok) throw new Error(d.reason);
    const recorded = t.pieces.reduce((n, b, i) => n + (d.state.have.has(i) ? b.length : 0), 0);
    expect(recorded).toBe(await validOnDisk(tp, out));
    // Damage one recorded piece in place: same size, same inode, only the mtime tells.
    const p = t.pieces.findIndex((_, i) => d.state.have.has(i));
    const at = fileAt(t, p * PIECE + 100);
    await sleep(20);
    const h = await open(`${at.path}.part`, 'r+');
    await h.write(Buffer.from('garbage'), 0, 7, at.offset);
    await h.close();
    const { validBefore } = await resumeToEnd(tp, out, s, t.data.length);
    expect(validBefore).toBe(recorded - t.pieces[p]!.length);
    await expectFinal(t, out);

    function fileAt(m: typeof t, pos: number): { path: string; offset: number } {
      let start = 0;
      for (const [i, len] of FILE_LENGTHS.entries()) {
        if (pos < start + len) return { path: path.join(out, ...m.files[i]!), offset: pos - start };
        start += len;
      }
      throw new RangeError(`${pos} is past the end`);
    }
  });

  it('a resume file whose files were all deleted starts from scratch', async () => {
    const { t, s, tp, out } = await partial(7);
    await rm(out, { recursive: true });
    const { validBefore } = await resumeToEnd(tp, out, s, t.data.length);
    expect(validBefore).toBe(0);
    await expectFinal(t, out);
  });
});

describe('existing data', () => {
  it("replaces another torrent's data piece by piece, and says how many pieces", async () => {
    const pieces = 24;
    const a = randomBytesSeeded(PIECE * pieces - 5, 'old');
    const b = Buffer.from(a);
    const changed = [1, 2, 10, 23];
    for (const i of changed) b[i * PIECE + 7] = b[i * PIECE + 7]! ^ 0x55;
    const tb = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data: b } });
    const out = path.join(dir, 'data.bin');
    await writeFile(out, a);
    const s = await seeder(tb, 50 * 1024 * 1024);
    const r = await runCli(dlArgs(await writeTorrent(tb), out, s), { tty: true });
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(b)).toBe(true);
    // Only the pieces that differ were fetched (the last one is 5 bytes short).
    expect(s.served).toBe(changed.length * PIECE - 5);
    expect(r.stderr).toMatch(/4 pieces of the existing data .* do not match/);
    expect(r.stderr).toMatch(/4 pieces of other data replaced/);
    expect(r.stderr).toMatch(/already present \(83\.3%\)/);
  });

  it('a piece whose write tdl began (in the journal) and that fails its hash is its own, not other data', async () => {
    const pieces = 16;
    const data = randomBytesSeeded(PIECE * pieces, 'torn');
    // What a run stopped by a full disk leaves: pieces 0-7 recorded, piece 8 begun (journal)
    // and only half written, the rest of its bytes zeros.
    const part = Buffer.concat([data.subarray(0, 8.5 * PIECE), Buffer.alloc(PIECE / 2)]);
    const { t, out } = await stoppedRun('torn.bin', data, part, 8, [8]);
    const torrentFile = await writeTorrent(t);
    // verify says the same: piece 8 is missing, not corrupt (and reads the resume file only).
    const v = await runCli(['verify', torrentFile, '-o', out, '--json']);
    expect(v.code, v.stderr).toBe(5);
    expect(v.events.find((e) => e['event'] === 'verified')).toMatchObject({
      piecesValid: 8,
      piecesMissing: 8,
      piecesCorrupt: 0,
    });
    const s = await seeder(t, 50 * 1024 * 1024);
    const r = await runCli(dlArgs(torrentFile, out, s, '--json'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const warnings = r.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(warnings.filter((m) => /not match/.test(String(m)))).toEqual([]);
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ replaced: 0 });
  });

  it('a file changed after a crash is hashed whole, though the journal names a piece of it', async () => {
    const pieces = 16;
    const data = randomBytesSeeded(PIECE * pieces, 'copied-over');
    // What a kill -9 leaves: pieces 0-11 recorded and stamped, piece 12 begun (journal).
    const part = Buffer.concat([data.subarray(0, 12 * PIECE), Buffer.alloc(4 * PIECE)]);
    const { t, out } = await stoppedRun('copied.bin', data, part, 12, [12]);
    const resumeFile = `${out}.tdl-resume`;
    // The crash was a minute ago; now the user puts another version's bytes over piece 3 (same
    // size, same inode, a newer time).
    const minuteAgo = Date.now() / 1000 - 60;
    utimesSync(resumeFile, minuteAgo, minuteAgo);
    const fd = openSync(`${out}.part`, 'r+');
    writeSync(fd, Buffer.alloc(PIECE, 0x5a), 0, PIECE, 3 * PIECE);
    closeSync(fd);
    const s = await seeder(t, 50 * 1024 * 1024);
    const r = await runCli(dlArgs(await writeTorrent(t), out, s, '--json'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // Piece 3 came again, besides the four never written.
    expect(s.served).toBe(5 * PIECE);
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ replaced: 1 });
  });

  it('after a crash, a file grown by pieces written since the checkpoint: only those are hashed', async () => {
    const pieces = 16;
    const data = randomBytesSeeded(PIECE * pieces, 'grown');
    // What a kill -9 leaves: pieces 0-3 recorded and stamped (the file 4 pieces long then),
    // then piece 15 begun (journal first) and written, the file growing to its full length.
    const { t, out } = await stoppedRun('grown.bin', data, data.subarray(0, 4 * PIECE), 4, [15]);
    const fd = openSync(`${out}.part`, 'r+');
    writeSync(fd, data.subarray(15 * PIECE), 0, PIECE, 15 * PIECE);
    closeSync(fd);
    const s = await seeder(t, 50 * 1024 * 1024);
    const r = await runCli(dlArgs(await writeTorrent(t), out, s, '--json'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // Only piece 15 was read again (the file was not hashed whole), and found.
    const checked = r.events.filter((e) => e['event'] === 'checking');
    expect(checked.at(-1)).toMatchObject({ total: PIECE, valid: PIECE });
    expect(r.events.find((e) => e['event'] === 'started')).toMatchObject({ present: 5 * PIECE });
    expect(s.served).toBe(11 * PIECE);
  });

  it('a removed file makes the pieces it shared missing, not other data', async () => {
    const t = multiFile(21);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'gone');
    expect((await runCli(dlArgs(tp, out, s))).code).toBe(0);
    // d.bin's first piece also holds the end of c.bin, which is still there and right.
    await rm(path.join(out, 'd.bin'));
    const r = await runCli(dlArgs(tp, out, s, '--json'));
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(warnings.filter((m) => /not match/.test(String(m)))).toEqual([]);
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ replaced: 0 });
    const d = t.data.subarray(t.data.length - 1_100_003);
    expect((await readFile(path.join(out, 'd.bin'))).equals(d)).toBe(true);
  });

  it("a file of the user's where the resume file goes is left alone: exit 6, nothing written", async () => {
    const t = multiFile(13);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    const notes = Buffer.from('my own notes, not a resume file\n');
    await writeFile(`${out}.tdl-resume`, notes);
    const r = await runCli(dlArgs(tp, out, s));
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(
      `${out}.tdl-resume is in the way of the resume file: it is not a tdl resume file (move it away)`,
    );
    expect((await readFile(`${out}.tdl-resume`)).equals(notes)).toBe(true);
    expect(existsSync(out)).toBe(false);
    expect(s.served).toBe(0);
    // Moved away, the download runs.
    await rm(`${out}.tdl-resume`);
    expect((await runCli(dlArgs(tp, out, s))).code).toBe(0);
    await expectFinal(t, out);
  });

  it('a folder where the resume file goes stops a download at once: exit 6, nothing fetched', async () => {
    const t = multiFile(14);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    await mkdir(`${out}.tdl-resume`);
    const r = await runCli(dlArgs(tp, out, s));
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      `tdl: ${out}.tdl-resume is a folder in the place of the resume file (move it away)\n`,
    );
    expect(existsSync(out)).toBe(false);
    expect(s.served).toBe(0);
  });

  it('a link where the resume file goes stops the run at once: exit 6, the link and its target left', async () => {
    const t = multiFile(15);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    const target = path.join(dir, 'precious');
    await writeFile(target, 'precious\n');
    await symlink(target, `${out}.tdl-resume`);
    const r = await runCli(dlArgs(tp, out, s));
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      `tdl: ${out}.tdl-resume is a symbolic link in the place of the resume file: refusing to follow it (move it away)\n`,
    );
    expect(existsSync(out)).toBe(false);
    expect(s.served).toBe(0);
    expect(await readlink(`${out}.tdl-resume`)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('precious\n');
  });

  it('a complete download run again checks the data and needs no peer', async () => {
    const t = multiFile(8);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    expect((await runCli(dlArgs(tp, out, s))).code).toBe(0);
    const before = s.served;
    await s.close();
    const r = await runCli(dlArgs(tp, out, s, '--json'));
    expect(r.code, r.stderr).toBe(0);
    expect(s.served).toBe(before);
    expect(r.events.find((e) => e['event'] === 'done')!['present']).toBe(t.data.length);
    await expectFinal(t, out);
  });
});

describe('verify', () => {
  it('reports a complete output (exit 0), with a progress bar on a TTY', async () => {
    const t = multiFile(9);
    const s = await seeder(t, 50 * 1024 * 1024);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    expect((await runCli(dlArgs(tp, out, s))).code).toBe(0);
    const { r, v } = await verifyJson(tp, out);
    expect(r.code).toBe(0);
    expect(v).toMatchObject({ complete: true, valid: t.data.length, piecesCorrupt: 0 });
    const text = await runCli(['verify', tp, '-o', out], { tty: true });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/result: +complete/);
    expect(text.stderr).toMatch(/\[#+-*\] .*checking/);
    // Something is said at once, before the files are looked for (seconds on a large torrent).
    expect(text.stderr.startsWith('\r\x1b[2Klooking for 5 files on disk  multi\r\x1b[2K')).toBe(
      true,
    );
    // A refusal after it wipes it before its message.
    const refused = await runCli(['verify', tp, '-o', out, '--select', '9'], { tty: true });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^\r\x1b\[2Klooking for 5 files on disk  multi\r\x1b\[2Ktdl: /);
    // -o naming the folder that holds the output works too, as for download.
    expect((await runCli(['verify', tp, '-o', dir, '-q'])).code).toBe(0);
  });

  it('reports a partial output (exit 5) and how much of it is valid', async () => {
    const t = multiFile(10);
    const s = await seeder(t);
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'multi');
    expect((await interruptAfter(dlArgs(tp, out, s), s, 900_000)).code).toBe(130);
    const { r, v } = await verifyJson(tp, out);
    expect(r.code).toBe(5);
    expect(v['complete']).toBe(false);
    expect(v['valid']).toBeGreaterThan(0);
    expect(v['valid']).toBeLessThan(t.data.length);
    expect(v['piecesCorrupt']).toBe(0);
    const text = await runCli(['verify', tp, '-o', out]);
    expect(text.code).toBe(5);
    expect(text.stdout).toMatch(/result: +incomplete/);
    expect(text.stdout).toMatch(/partial/);
    // Verify only reads: the resume file and the .part files are as they were.
    expect(existsSync(`${out}.tdl-resume`)).toBe(true);
    expect(existsSync(path.join(out, 'a.bin.part'))).toBe(true);
  });

  it('a renamed copy of the folder with a file grown or cut names that file, not all missing', async () => {
    const t = multiFile(12);
    const tp = await writeTorrent(t);
    // The torrent's files, put by hand in a folder of another name: no resume file beside it.
    const out = path.join(dir, 'copy');
    let off = 0;
    const sizes = [700_001, 1, 0, 1_300_000, 1_100_003];
    for (const [i, f] of t.files.entries()) {
      await mkdir(path.join(out, ...f.slice(0, -1)), { recursive: true });
      await writeFile(path.join(out, ...f), t.data.subarray(off, off + sizes[i]!));
      off += sizes[i]!;
    }
    expect((await runCli(['verify', tp, '-o', out, '-q'])).code).toBe(0);
    await truncate(path.join(out, 'd.bin'), 1_100_004);
    const long = await verifyJson(tp, out);
    expect(long.r.code).toBe(5);
    const files = long.v['files'] as { path: string; state: string }[];
    expect(files.find((f) => f.path.endsWith('d.bin'))?.state).toBe('too-long');
    expect(files.filter((f) => f.state === 'missing')).toEqual([]);
    await truncate(path.join(out, 'd.bin'), 1000);
    const cut = await verifyJson(tp, out);
    expect(cut.r.code).toBe(5);
    const cutFiles = cut.v['files'] as { path: string; state: string }[];
    expect(cutFiles.find((f) => f.path.endsWith('d.bin'))?.state).toBe('partial');
    expect(cutFiles.filter((f) => f.state === 'missing')).toEqual([]);
    // One file cut and another gone: still this folder (files there whole at their sizes),
    // each named for what it is, not the torrent's folder inside it all missing.
    const gone = t.files.findIndex((f) => f.at(-1) === 'c.bin');
    expect(gone).toBeGreaterThanOrEqual(0);
    await rm(path.join(out, ...t.files[gone]!));
    const both = await verifyJson(tp, out);
    expect(both.r.code).toBe(5);
    const bothFiles = both.v['files'] as { path: string; state: string }[];
    expect(bothFiles.find((f) => f.path.endsWith('d.bin'))?.state).toBe('partial');
    expect(
      bothFiles.filter((f) => f.state === 'missing').map((f) => path.basename(f.path)),
    ).toEqual(['c.bin']);
    expect(existsSync(path.join(out, 'multi'))).toBe(false);
    // Grown while another file is cut short: too long all the same (it must be cut before a
    // download takes the folder), with what of it is valid, and the text says to cut it.
    await writeFile(path.join(out, ...t.files[gone]!), Buffer.alloc(0));
    await writeFile(path.join(out, 'd.bin'), Buffer.alloc(1_100_004));
    await truncate(path.join(out, 'a.bin'), 1_000);
    const mixed = await verifyJson(tp, out);
    expect(mixed.r.code).toBe(5);
    const mixedFiles = mixed.v['files'] as { path: string; state: string; valid: number }[];
    expect(mixedFiles.find((f) => f.path.endsWith('d.bin'))).toMatchObject({
      state: 'too-long',
      valid: 0,
    });
    expect(mixedFiles.find((f) => f.path.endsWith('a.bin'))?.state).toBe('partial');
    const text = await runCli(['verify', tp, '-o', out]);
    // The very command: the file's size in the torrent and its path, quoted for a shell.
    const dPath = path.join(out, 'd.bin');
    const dLength = 1_100_003;
    expect(text.stdout).toMatch(
      /^result: +incomplete: cut the file that is too long to its size in the torrent \(truncate -s \d+ \S+\), then run tdl download again$/m,
    );
    expect(text.stdout).toContain(`(truncate -s ${dLength} ${dPath})`);
  });

  it('reports a corrupted output (exit 5), a missing one (exit 5), an unreadable one (exit 6)', async () => {
    const data = randomBytesSeeded(PIECE * 10, 11);
    const t = makeTorrent({ name: 'one.bin', pieceLength: PIECE, files: { data } });
    const tp = await writeTorrent(t);
    const out = path.join(dir, 'one.bin');
    const bad = Buffer.from(data);
    bad[PIECE * 4 + 3] = bad[PIECE * 4 + 3]! ^ 1;
    await writeFile(out, bad);
    const { r, v } = await verifyJson(tp, out);
    expect(r.code).toBe(5);
    expect(v).toMatchObject({ piecesCorrupt: 1, piecesValid: 9, valid: PIECE * 9 });
    // The last progress event counts bytes too (it gave the number of valid pieces).
    const last = r.events.filter((e) => e['event'] === 'progress').at(-1);
    expect(last).toMatchObject({ checked: PIECE * 10, total: PIECE * 10, valid: PIECE * 9 });
    await writeFile(out, data);
    expect((await runCli(['verify', tp, '-o', out])).code).toBe(0);
    await truncate(out, PIECE * 10 + 1);
    const long = await runCli(['verify', tp, '-o', out]);
    expect(long.code).toBe(5);
    expect(long.stdout).toContain(`too long    one.bin (${PIECE * 10} bytes in the torrent)`);
    // Not "run tdl download again": a download would take the file for someone else's.
    expect(long.stdout).toMatch(
      /^result: +all data valid, not finished: cut the file that is too long to its size in the torrent \(truncate -s \d+ \S+\)$/m,
    );
    expect(long.stdout).toContain(`(truncate -s ${PIECE * 10} ${out})`);
    // Cut short inside piece 4: its bytes past the end are not on disk, so it is missing (as
    // those after it), not corrupt, whatever the bytes before the cut hold.
    await truncate(out, PIECE * 4 + 1000);
    const cut = await verifyJson(tp, out);
    expect(cut.r.code).toBe(5);
    expect(cut.v).toMatchObject({ piecesValid: 4, piecesMissing: 6, piecesCorrupt: 0 });

    const missing = await verifyJson(tp, path.join(dir, 'nowhere.bin'));
    expect(missing.r.code).toBe(5);
    expect(missing.v['valid']).toBe(0);

    // A folder where its working copy goes: not there, and said so (the rest is checked).
    await mkdir(path.join(dir, 'odd.bin.part'));
    const folder = await verifyJson(tp, path.join(dir, 'odd.bin'));
    expect(folder.r.code).toBe(5);
    expect(folder.v['files']).toEqual([expect.objectContaining({ notAFile: true })]);
    // Data that cannot be read as tdl reads (never through a link at a path the torrent's
    // name makes): exit 6, naming it.
    await mkdir(path.join(dir, 'linked'));
    await symlink(out, path.join(dir, 'linked', 'one.bin'));
    const unreadable = await runCli(['verify', tp, '-o', path.join(dir, 'linked')]);
    expect(unreadable.code).toBe(6);
    expect(unreadable.stderr).toMatch(/linked\/one\.bin: it is a symbolic link/);
  });
});
