#!/usr/bin/env node
/**
 * `npm run demo`: a real download on a loopback swarm, no internet needed.
 *
 * Makes a 32 MiB multi-file payload (reproducible), a .torrent for it announcing to an HTTP
 * tracker on 127.0.0.1, and two seeders on 127.0.0.1 that serve it at 6 MiB/s each; then runs
 * the real CLI (`dist/bundle/main.js`) with its progress bar, checks the bytes and cleans up.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import bencode from 'bencode';
import { Bitfield } from '../dist/wire/bitfield.js';
import { Framer } from '../dist/wire/framer.js';
import { encodeHandshake } from '../dist/wire/handshake.js';
import { encodeMessage, encodePiece } from '../dist/wire/messages.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'bundle', 'main.js');
const PIECE = 256 * 1024;
const RATE = 6 * 1024 * 1024;
const FILES = [
  { path: ['README.txt'], size: 4_321 },
  { path: ['video', 'clip.bin'], size: 20 * 1024 * 1024 + 77 },
  { path: ['video', 'subs.txt'], size: 9_999 },
  { path: ['data.bin'], size: 12 * 1024 * 1024 - 14_397 },
];

function seeded(n, seed) {
  const key = createHash('sha256').update(`tdl-demo:${seed}`).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

function startSeeder(infoHash, data) {
  const pieceCount = Math.ceil(data.length / PIECE);
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
    const queue = [];
    let shaken = false;
    let tokens = RATE / 10;
    let last = Date.now();
    let timer = null;
    const pump = () => {
      timer = null;
      const now = Date.now();
      tokens = Math.min(RATE / 10, tokens + ((now - last) / 1000) * RATE);
      last = now;
      while (queue.length > 0 && tokens >= queue[0].length && !socket.destroyed) {
        const r = queue.shift();
        tokens -= r.length;
        const start = r.index * PIECE + r.begin;
        socket.write(encodePiece(r.index, r.begin, data.subarray(start, start + r.length)));
      }
      if (queue.length > 0) timer = setTimeout(pump, 20);
    };
    socket.on('data', (chunk) => {
      try {
        framer.push(chunk);
        if (!shaken) {
          if (!framer.nextHandshake()) return;
          shaken = true;
          socket.write(encodeHandshake(infoHash, Buffer.from('-DM0001-demo-seeder0')));
          const bf = new Bitfield(pieceCount);
          for (let i = 0; i < pieceCount; i++) bf.set(i);
          socket.write(encodeMessage({ type: 'bitfield', bitfield: bf.toBuffer() }));
        }
        for (let m = framer.next(); m; m = framer.next()) {
          if (m.type === 'interested') socket.write(encodeMessage({ type: 'unchoke' }));
          else if (m.type === 'request')
            queue.push({ index: m.index, begin: m.begin, length: m.length });
        }
        if (!timer) pump();
      } catch {
        socket.destroy();
      }
    });
    socket.on('close', () => timer && clearTimeout(timer));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

function startTracker(getPorts) {
  const server = http.createServer((req, res) => {
    const peers = Buffer.concat(
      getPorts().map((p) => {
        const b = Buffer.from([127, 0, 0, 1, 0, 0]);
        b.writeUInt16BE(p, 4);
        return b;
      }),
    );
    res.end(Buffer.from(bencode.encode({ interval: 60, peers })));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/announce`,
        close: () => server.close(),
      }),
    ),
  );
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'tdl-demo-'));
const closers = [];
let code = 1;
/** The download, while it runs: a signal is passed on to it, and the demo cleans up after. */
let child = null;
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
for (const [sig, n] of Object.entries(SIGNALS)) {
  process.on(sig, () => {
    // Ctrl-C reaches tdl from the terminal too; its exit ends the wait below, then `finally`.
    if (child) {
      child.kill(sig);
      return;
    }
    for (const c of closers) c();
    rmSync(dir, { recursive: true, force: true });
    process.exit(128 + n);
  });
}
/** A path as the user would type it: relative to here when that is shorter. */
const shown = (p) => {
  const rel = path.relative(process.cwd(), p);
  return rel && rel.length < p.length ? rel : p;
};
const tty = process.stderr.isTTY === true;
try {
  const parts = FILES.map((f, i) => seeded(f.size, i));
  const data = Buffer.concat(parts);
  const hashes = [];
  for (let o = 0; o < data.length; o += PIECE) {
    hashes.push(
      createHash('sha1')
        .update(data.subarray(o, o + PIECE))
        .digest(),
    );
  }
  const info = {
    name: 'demo-payload',
    'piece length': PIECE,
    pieces: Buffer.concat(hashes),
    files: FILES.map((f) => ({ length: f.size, path: f.path })),
  };
  const infoHash = createHash('sha1').update(bencode.encode(info)).digest();
  const seeders = [];
  const tracker = await startTracker(() => seeders.map((s) => s.port));
  closers.push(tracker.close);
  for (let i = 0; i < 2; i++) {
    const s = await startSeeder(infoHash, data);
    seeders.push(s);
    closers.push(s.close);
  }
  const torrent = path.join(dir, 'demo.torrent');
  await writeFile(
    torrent,
    bencode.encode({ announce: tracker.url, info, 'created by': 'tdl demo' }),
  );
  const out = path.join(dir, 'downloads');
  await mkdir(out);

  process.stderr.write(
    `demo: a loopback swarm on 127.0.0.1 (tracker and 2 seeders at ${RATE / 1048576} MiB/s each)\n` +
      `demo: $ tdl download ${shown(torrent)} -o ${shown(out)}\n${tty ? '\n' : ''}`,
  );
  code = await new Promise((resolve) => {
    child = spawn(process.execPath, [CLI, 'download', torrent, '-o', out], {
      stdio: 'inherit',
    });
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + (SIGNALS[sig] ?? 0) : 1)));
  });
  child = null;
  if (code === 0) {
    for (let i = 0; i < FILES.length; i++) {
      const got = await readFile(path.join(out, 'demo-payload', ...FILES[i].path));
      if (!got.equals(parts[i])) throw new Error(`demo: ${FILES[i].path.join('/')} differs`);
    }
    process.stderr.write(
      `${tty ? '\n' : ''}demo: all ${FILES.length} files match the seeders' data byte for byte\n`,
    );
  }
} finally {
  for (const c of closers) c();
  await rm(dir, { recursive: true, force: true });
}
process.exitCode = code;
