#!/usr/bin/env node
// @ts-check
/**
 * Measures resume: a single-file download from a local seeder is stopped halfway, then run
 * again; prints what the seeder served on the second run and how long tdl's start-up check took.
 *
 *   npm run build && node scripts/measure-resume.mjs [--size-mib 256] [--piece-kib 256]
 *                                                    [--rate-mib 0] [--cold]
 *
 * Scenarios, each from the same halfway point:
 *   kill -9     SIGKILL halfway, then resume (resume file + journal)
 *   no resume   the same data with the resume file deleted (everything present is re-hashed)
 *   Ctrl-C      SIGINT halfway, then resume (clean checkpoint)
 * plus `tdl verify` of the halfway data (a full re-hash) for scale.
 *
 * --rate-mib limits the seeder (MiB/s, 0 = unlimited); --cold drops the page cache before each
 * measured run (root only). The seeder runs in this process; tdl runs as a child process.
 */

import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import bencode from 'bencode';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = path.join(ROOT, 'dist');
const CLI = path.join(DIST, 'bundle', 'main.js');
const WAIT_MS = 120_000;

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    'piece-kib': { type: 'string', default: '256' },
    'rate-mib': { type: 'string', default: '0' },
    cold: { type: 'boolean', default: false },
  },
});
const SIZE = Number(args['size-mib']) * 1024 * 1024;
const PIECE = Number(args['piece-kib']) * 1024;
const RATE = Number(args['rate-mib']) * 1024 * 1024;

if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: run \`npm run build\` first`);
  process.exit(2);
}
const { Framer } = await import(path.join(DIST, 'wire', 'framer.js'));
const { encodeHandshake } = await import(path.join(DIST, 'wire', 'handshake.js'));
const { encodeMessage, encodePiece } = await import(path.join(DIST, 'wire', 'messages.js'));
const { Bitfield } = await import(path.join(DIST, 'wire', 'bitfield.js'));

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();
const mib = (n) => (n / 1048576).toFixed(1);

/** A seeder with every piece, counting the block bytes it serves. */
async function startSeeder(infoHash, data) {
  const pieceCount = Math.ceil(data.length / PIECE);
  const sockets = new Set();
  const state = { port: 0, served: 0, close: async () => {} };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
    let handshaken = false;
    let choked = true;
    /** @type {{index: number, begin: number, length: number}[]} */
    const queue = [];
    let timer = null;
    let tokens = RATE;
    let last = Date.now();
    const pump = () => {
      timer = null;
      while (queue.length > 0 && !socket.destroyed) {
        if (RATE > 0) {
          const now = Date.now();
          tokens = Math.min(RATE, tokens + ((now - last) / 1000) * RATE);
          last = now;
          if (tokens < queue[0].length) {
            timer = setTimeout(pump, 5);
            return;
          }
          tokens -= queue[0].length;
        }
        const r = queue.shift();
        const start = r.index * PIECE + r.begin;
        socket.write(encodePiece(r.index, r.begin, data.subarray(start, start + r.length)));
        state.served += r.length;
      }
    };
    socket.on('data', (chunk) => {
      try {
        framer.push(chunk);
        if (!handshaken) {
          if (!framer.nextHandshake()) return;
          handshaken = true;
          socket.write(encodeHandshake(infoHash, Buffer.from('-MS0001-000000000000')));
          const bf = new Bitfield(pieceCount);
          for (let i = 0; i < pieceCount; i++) bf.set(i);
          socket.write(encodeMessage({ type: 'bitfield', bitfield: bf.toBuffer() }));
        }
        for (let m = framer.next(); m; m = framer.next()) {
          if (m.type === 'interested' && choked) {
            choked = false;
            socket.write(encodeMessage({ type: 'unchoke' }));
          } else if (m.type === 'request') {
            queue.push({ index: m.index, begin: m.begin, length: m.length });
          } else if (m.type === 'cancel') {
            const i = queue.findIndex((r) => r.index === m.index && r.begin === m.begin);
            if (i >= 0) queue.splice(i, 1);
          }
        }
        if (!timer) pump();
      } catch {
        socket.destroy();
      }
    });
    socket.on('close', () => timer && clearTimeout(timer));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  state.port = /** @type {net.AddressInfo} */ (server.address()).port;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(() => r(undefined)));
  };
  return state;
}

/** tdl in its own process group; resolves with its exit, stdout events and stderr. */
function tdl(argv, env = {}) {
  const proc = spawn(process.execPath, [CLI, ...argv], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '', ...env },
  });
  children.add(proc);
  const t0 = performance.now();
  const run = { proc, stdout: '', stderr: '', startedMs: -1, exit: null };
  proc.stdout.on('data', (b) => {
    run.stdout += b.toString();
    if (run.startedMs < 0 && run.stdout.includes('"event":"started"')) {
      run.startedMs = performance.now() - t0;
    }
  });
  proc.stderr.on('data', (b) => (run.stderr += b.toString()));
  run.exit = new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      killGroup(proc, 'SIGKILL');
      reject(
        new Error(`tdl ${argv[0]} did not finish in ${WAIT_MS} ms: ${run.stderr.slice(-2000)}`),
      );
    }, WAIT_MS);
    proc.on('exit', (code, signal) => {
      clearTimeout(t);
      children.delete(proc);
      resolve({ code, signal, ms: performance.now() - t0 });
    });
  });
  return run;
}

function killGroup(proc, sig) {
  try {
    if (proc.pid) process.kill(-proc.pid, sig);
  } catch {
    // gone
  }
}

async function waitFor(cond, what) {
  const end = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function dropCaches() {
  if (!args.cold) return;
  try {
    spawn('sync').on('exit', () => {});
    await new Promise((r) => setTimeout(r, 200));
    await fs.writeFile('/proc/sys/vm/drop_caches', '3\n');
  } catch (e) {
    console.error(`--cold: cannot drop the page cache (${e.message}); measuring warm`);
    args.cold = false;
  }
}

/** Run a download until the seeder has served half, then send `sig`. */
async function stopHalfway(seeder, torrent, out, sig) {
  const before = seeder.served;
  const run = tdl(['download', torrent, '-o', out, '--peer', `127.0.0.1:${seeder.port}`, '--json']);
  await waitFor(() => seeder.served - before >= SIZE / 2 || run.proc.exitCode !== null, 'halfway');
  killGroup(run.proc, sig);
  const ex = await run.exit;
  if (ex.code === 0) throw new Error('the download finished before it could be stopped');
  return seeder.served - before;
}

/** The second run: what the seeder served, and the start-up check as tdl logs it. */
async function resume(seeder, torrent, out) {
  await dropCaches();
  const before = seeder.served;
  const run = tdl(
    ['download', torrent, '-o', out, '--peer', `127.0.0.1:${seeder.port}`, '--json'],
    { DEBUG: 'tdl:resume' },
  );
  const ex = await run.exit;
  if (ex.code !== 0) throw new Error(`resume exited ${ex.code}: ${run.stderr.slice(-2000)}`);
  const m =
    /start-up check: (\d+)\/(\d+) pieces present \((\d+) from the resume file, (\d+) of (\d+) hashed valid, (\d+) MiB read\), resume file (\w+), (\d+) ms/.exec(
      run.stderr,
    );
  if (!m) throw new Error(`no start-up check line in: ${run.stderr.slice(-2000)}`);
  const done = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((e) => e.event === 'done');
  return {
    served: seeder.served - before,
    present: done?.present ?? 0,
    checkMs: Number(m[8]),
    fromResume: Number(m[3]),
    hashed: Number(m[5]),
    readMiB: Number(m[6]),
    resumeFile: m[7],
    toStartedMs: Math.round(run.startedMs),
    totalMs: Math.round(ex.ms),
  };
}

async function verifyMs(torrent, out) {
  await dropCaches();
  const run = tdl(['verify', torrent, '-o', out, '--json']);
  const ex = await run.exit;
  const v = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((e) => e.event === 'verified');
  return { ms: Math.round(ex.ms), valid: v?.valid ?? 0 };
}

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'tdl-measure-'));
let seeder;
try {
  console.error(`payload: ${mib(SIZE)} MiB, ${PIECE / 1024} KiB pieces, in ${tmp}`);
  const data = randomBytes(SIZE);
  const hashes = [];
  for (let off = 0; off < SIZE; off += PIECE) {
    hashes.push(
      createHash('sha1')
        .update(data.subarray(off, off + PIECE))
        .digest(),
    );
  }
  const info = {
    name: 'big.bin',
    'piece length': PIECE,
    length: SIZE,
    pieces: Buffer.concat(hashes),
  };
  const infoHash = createHash('sha1').update(bencode.encode(info)).digest();
  const torrent = path.join(tmp, 'big.torrent');
  await fs.writeFile(torrent, bencode.encode({ info }));
  seeder = await startSeeder(infoHash, data);

  const rows = [];
  // SIGKILL halfway; a copy of that state without its resume file for the re-hash case.
  await fs.mkdir(path.join(tmp, 'kill'));
  await fs.mkdir(path.join(tmp, 'norf'));
  const killOut = path.join(tmp, 'kill', 'big.bin');
  const killServed = await stopHalfway(seeder, torrent, killOut, 'SIGKILL');
  await fs.copyFile(`${killOut}.part`, path.join(tmp, 'norf', 'big.bin.part'));
  const v = await verifyMs(torrent, killOut);
  rows.push({
    name: 'kill -9',
    first: killServed,
    valid: v.valid,
    ...(await resume(seeder, torrent, killOut)),
  });
  rows.push({
    name: 'no resume file',
    first: killServed,
    valid: v.valid,
    ...(await resume(seeder, torrent, path.join(tmp, 'norf', 'big.bin'))),
  });
  await fs.mkdir(path.join(tmp, 'int'));
  const intOut = path.join(tmp, 'int', 'big.bin');
  const intServed = await stopHalfway(seeder, torrent, intOut, 'SIGINT');
  const vi = await verifyMs(torrent, intOut);
  rows.push({
    name: 'Ctrl-C',
    first: intServed,
    valid: vi.valid,
    ...(await resume(seeder, torrent, intOut)),
  });

  console.log(
    `\n${mib(SIZE)} MiB single file, ${PIECE / 1024} KiB pieces, seeder ${RATE ? `${mib(RATE)} MiB/s` : 'unthrottled'}, page cache ${args.cold ? 'dropped' : 'warm'}\n`,
  );
  console.log(
    '| stopped by | served before stop | valid on disk | present at resume | served on resume | start-up check | from resume file / hashed (read) | spawn to started | second run |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${mib(r.first)} MiB | ${mib(r.valid)} MiB | ${mib(r.present)} MiB | ${mib(r.served)} MiB (${r.served} B) | ${r.checkMs} ms | ${r.fromResume} / ${r.hashed} pieces (${r.readMiB} MiB) | ${r.toStartedMs} ms | ${r.totalMs} ms |`,
    );
  }
  console.log(
    `\nfull re-hash for scale: tdl verify of the kill -9 data took ${v.ms} ms (process included)`,
  );
  for (const r of rows) {
    if (r.served !== SIZE - r.present) {
      console.log(`note: ${r.name}: served ${r.served} B, missing was ${SIZE - r.present} B`);
    }
  }
} finally {
  for (const c of children) killGroup(c, 'SIGKILL');
  await seeder?.close();
  await fs.rm(tmp, { recursive: true, force: true });
}
