/**
 * A 2,000-file torrent against the built CLI in a child process limited to 256 open files
 * (`ulimit -n 256`): it downloads, verifies, and resumes after Ctrl-C, with every byte right.
 * Before the bounded pool of open files this failed with EMFILE (exit 6).
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { checkEvent } from '../helpers/events-schema.js';
import { startFakeSeeder, type FakeSeeder } from '../helpers/fake-seeder.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const MAIN = fileURLToPath(new URL('../../dist/bundle/main.js', import.meta.url));
const FILES = 2000;
const LIMIT = 256;
const PIECE = 16 * 1024;
const WAIT_MS = 60_000;

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: build the CLI first with \`npm run build\``);
  }
});
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-many-'));
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  await cleanup();
});

/** 2,000 files of 60 to 259 bytes in nested folders (about 320 KiB; pieces cross many files). */
function manyFileTorrent() {
  const files = Array.from({ length: FILES }, (_, i) => ({
    path: [`d${i % 10}`, `e${(i >> 4) % 5}`, `f${i}.dat`],
    data: randomBytesSeeded(60 + ((i * 37) % 200), `many-${i}`),
  }));
  const t = makeTorrent({ name: 'many', pieceLength: PIECE, files });
  return { ...t, files };
}

interface Run {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** The CLI in a child process whose open-file limit is LIMIT, killed after the test. */
function limitedCli(args: string[]): Run {
  const quoted = [process.execPath, MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`);
  const child = spawn('bash', ['-c', `ulimit -n ${LIMIT} && exec ${quoted.join(' ')}`], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith('{')) lines.push(checkEvent(JSON.parse(line) as Record<string, unknown>));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  );
  closers.push(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  return { child, lines, stderr: () => err, exited };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + WAIT_MS;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function seeder(t: ReturnType<typeof manyFileTorrent>, rate?: number): Promise<FakeSeeder> {
  const s = await startFakeSeeder({
    infoHash: t.infoHash,
    data: t.data,
    pieceLength: PIECE,
    ...(rate ? { rateLimit: rate } : {}),
  });
  closers.push(() => s.close());
  return s;
}

async function expectFiles(t: ReturnType<typeof manyFileTorrent>, root: string): Promise<void> {
  for (const f of t.files) {
    const got = await readFile(path.join(root, ...f.path));
    expect(got.equals(f.data), `${f.path.join('/')} differs`).toBe(true);
  }
  expect(existsSync(`${root}.tdl-resume`)).toBe(false);
}

describe(`${FILES} files under ulimit -n ${LIMIT}`, () => {
  it('downloads every file, then verify reads them all back', async () => {
    const t = manyFileTorrent();
    const s = await seeder(t);
    const tp = path.join(dir, 'many.torrent');
    await writeFile(tp, t.torrent);
    const out = path.join(dir, 'out');
    const dl = limitedCli(['download', tp, '-o', out, '--peer', `127.0.0.1:${s.port}`, '--json']);
    const code = await within(dl.exited, WAIT_MS, 'download');
    expect(code, dl.stderr()).toBe(0);
    await expectFiles(t, out);

    const v = limitedCli(['verify', tp, '-o', out, '--json']);
    expect(await within(v.exited, WAIT_MS, 'verify'), v.stderr()).toBe(0);
    const verified = v.lines.find((e) => e['event'] === 'verified')!;
    expect(verified['complete']).toBe(true);
    expect(verified['valid']).toBe(t.data.length);
  });

  it('resumes after Ctrl-C and fetches only what is missing', async () => {
    const t = manyFileTorrent();
    // About 1.5 s for the whole torrent: Ctrl-C lands mid-download.
    const s = await seeder(t, 200 * 1024);
    const tp = path.join(dir, 'many.torrent');
    await writeFile(tp, t.torrent);
    const out = path.join(dir, 'out');
    const args = ['download', tp, '-o', out, '--peer', `127.0.0.1:${s.port}`, '--json'];
    const first = limitedCli(args);
    await until(() => s.served >= t.data.length / 3, 'a third of the data');
    // The limit really applies to the tdl process itself.
    const limits = await readFile(`/proc/${first.child.pid}/limits`, 'latin1');
    expect(limits).toMatch(new RegExp(`^Max open files\\s+${LIMIT}\\s`, 'm'));
    first.child.kill('SIGINT');
    expect(await within(first.exited, WAIT_MS, 'interrupted download'), first.stderr()).toBe(130);
    expect(existsSync(`${out}.tdl-resume`)).toBe(true);

    const servedBefore = s.served;
    const second = limitedCli(args);
    expect(await within(second.exited, WAIT_MS, 'resumed download'), second.stderr()).toBe(0);
    const started = second.lines.find((e) => e['event'] === 'started')!;
    const present = started['present'] as number;
    expect(present).toBeGreaterThan(0);
    // Only the missing bytes were fetched again.
    expect(s.served - servedBefore).toBe(t.data.length - present);
    await expectFiles(t, out);
  });
});
