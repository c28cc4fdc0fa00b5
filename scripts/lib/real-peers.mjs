// @ts-check
/**
 * A harness that runs real BitTorrent programs on 127.0.0.1: opentracker as the tracker,
 * libtorrent (python3-libtorrent), aria2c and transmission-daemon as seeders, libtorrent and
 * aria2c as reference downloaders, and tdl's own CLI. Used by the interop tests and by
 * scripts/bench.mjs.
 *
 * Every program runs in its own process group (spawned detached) and is ended with SIGKILL to
 * the whole group by stop() or stopAll(); long-lived servers also run under guard.py, which ends
 * them if this process dies without cleaning up. Every wait is bounded by a timeout, and every
 * failure carries the tail of the program's stderr.
 */

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync, createHash } from 'node:crypto';
import dgram from 'node:dgram';
import {
  createReadStream,
  existsSync,
  accessSync,
  constants as fsConstants,
  rmSync,
} from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import bencode from 'bencode';

/** Debian's Python: the python3-libtorrent module is built for it (not for another python3). */
export const PYTHON = '/usr/bin/python3';
/** GNU time (Debian package `time`); when missing, measure.py does the same job. */
export const GNU_TIME = '/usr/bin/time';
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/**
 * `s` quoted for a POSIX shell command line (`bash -c`).
 * @param {string} s
 */
export const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** tdl's built CLI (`npm run build`); the TDL_CLI environment variable points elsewhere. */
export const TDL_CLI = process.env.TDL_CLI || path.join(REPO_ROOT, 'dist', 'bundle', 'main.js');

const LIB_DIR = fileURLToPath(new URL('.', import.meta.url));
const LT_TOOL = path.join(LIB_DIR, 'lt_tool.py');
const MEASURE = path.join(LIB_DIR, 'measure.py');
const GUARD = path.join(LIB_DIR, 'guard.py');

/** How much of a program's stdout / stderr is kept for error messages. */
export const STDERR_TAIL_BYTES = 8 * 1024;
/** The most stdout a measured run keeps (tdl's --json events for a long run fit easily). */
export const MAX_STDOUT_BYTES = 16 * 1024 * 1024;
/** How long stop() waits after SIGTERM (so a client can tell the tracker it left) before SIGKILL. */
export const STOP_GRACE_MS = 2_000;
/** How long we wait for a program to exit after SIGKILL. */
export const KILL_WAIT_MS = 3_000;
/** Default bound on a server's start-up (listening, data checked, first announce). */
export const START_TIMEOUT_MS = 60_000;
/** One HTTP request to the tracker. */
export const HTTP_TIMEOUT_MS = 5_000;
/** Poll interval of waits and of on-disk progress sampling. */
export const POLL_MS = 100;
/** Write chunk of makePayload. */
export const PAYLOAD_CHUNK_BYTES = 1024 * 1024;

/**
 * Programs the harness can use, how to find them and which Debian package provides them.
 * @type {Record<string, { pkg: string, check: () => boolean }>}
 */
export const PROGRAMS = {
  opentracker: { pkg: 'opentracker', check: () => findExecutable('opentracker') !== null },
  libtorrent: {
    pkg: 'python3-libtorrent',
    check: () =>
      existsSync(PYTHON) &&
      spawnSync(PYTHON, ['-c', 'import libtorrent'], { stdio: 'ignore' }).status === 0,
  },
  aria2c: { pkg: 'aria2', check: () => findExecutable('aria2c') !== null },
  'transmission-daemon': {
    pkg: 'transmission-daemon',
    check: () => findExecutable('transmission-daemon') !== null,
  },
  'transmission-remote': {
    pkg: 'transmission-cli',
    check: () => findExecutable('transmission-remote') !== null,
  },
};

/** @type {Map<string, boolean>} */
const programCache = new Map();

/**
 * Which of the named programs (keys of PROGRAMS) are missing.
 * @param {string[]} names
 * @returns {{ name: string, pkg: string }[]}
 */
export function missingPrograms(names) {
  const missing = [];
  for (const name of names) {
    const entry = PROGRAMS[name];
    if (!entry) throw new Error(`unknown program ${name}`);
    let ok = programCache.get(name);
    if (ok === undefined) {
      ok = entry.check();
      programCache.set(name, ok);
    }
    if (!ok) missing.push({ name, pkg: entry.pkg });
  }
  return missing;
}

/**
 * @param {string} name
 * @returns {string | null} the absolute path of an executable found on PATH
 */
export function findExecutable(name) {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Process and temp-folder bookkeeping

/**
 * @typedef {object} Tracked
 * @property {string} name
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid the process group id (the child is its group leader)
 * @property {() => string} stderrTail
 * @property {() => string} stdoutTail
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {{ code: number | null, signal: NodeJS.Signals | null } | null} exit
 * @property {NodeJS.Signals} stopSignal the signal that asks it to leave gracefully
 * @property {number} stopGraceMs how long stopAll lets it leave before SIGKILL (0: at once)
 */

/** @type {Set<Tracked>} */
const live = new Set();
/** @type {Set<string>} */
const tempDirs = new Set();
let hooksInstalled = false;

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', stopAllSync);
  for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.once(sig, () => {
      stopAllSync();
      process.exit(128 + (os.constants.signals[sig] ?? 1));
    });
  }
}

/** Kill every process group and remove every temp folder, synchronously (exit and signals). */
function stopAllSync() {
  for (const t of live) killGroup(t.pid, 'SIGKILL');
  live.clear();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  tempDirs.clear();
}

/**
 * @param {number} pgid
 * @param {NodeJS.Signals} sig
 */
function killGroup(pgid, sig) {
  try {
    process.kill(-pgid, sig);
  } catch {
    // the group is already gone
  }
}

/**
 * A fresh folder under os.tmpdir(), removed by stopAll() (or at exit) unless removed before.
 * @param {string} [prefix]
 */
export async function makeTempDir(prefix = 'tdl-peers-') {
  installHooks();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** @param {string} dir */
export async function removeTempDir(dir) {
  await fs.rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Keep the last `max` bytes of a stream.
 * @param {number} max
 */
function tailBuffer(max) {
  /** @type {Buffer[]} */
  let chunks = [];
  let size = 0;
  return {
    /** @param {Buffer} chunk */
    push(chunk) {
      chunks.push(chunk);
      size += chunk.length;
      while (size > max && chunks.length > 1) {
        const first = /** @type {Buffer} */ (chunks.shift());
        size -= first.length;
      }
    },
    text() {
      const all = Buffer.concat(chunks);
      return all.subarray(Math.max(0, all.length - max)).toString('utf8');
    },
  };
}

/**
 * Start a program in its own process group and keep track of it.
 * @param {string} name a label for messages
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ cwd?: string, env?: NodeJS.ProcessEnv, guard?: boolean, stopSignal?: NodeJS.Signals,
 *   stopGraceMs?: number, onStdoutLine?: (line: string) => void }} [opts]
 * @returns {Tracked}
 */
export function spawnTracked(name, cmd, args, opts = {}) {
  installHooks();
  const [file, argv] = opts.guard
    ? [PYTHON, [GUARD, String(process.pid), cmd, ...args]]
    : [cmd, args];
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const err = tailBuffer(STDERR_TAIL_BYTES);
  const out = tailBuffer(STDERR_TAIL_BYTES);
  child.stderr?.on('data', (c) => err.push(c));
  let partial = '';
  child.stdout?.on('data', (c) => {
    out.push(c);
    if (opts.onStdoutLine) {
      partial += c.toString('utf8');
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        opts.onStdoutLine(line);
      }
    }
  });
  /** @type {Tracked} */
  const t = {
    name,
    child,
    pid: child.pid ?? -1,
    stderrTail: () => err.text(),
    stdoutTail: () => out.text(),
    exit: null,
    stopSignal: opts.stopSignal ?? 'SIGTERM',
    stopGraceMs: opts.stopGraceMs ?? 0,
    exited: new Promise((resolve) => {
      child.on('error', (e) => {
        err.push(Buffer.from(`\nspawn ${cmd}: ${e.message}\n`));
        t.exit = { code: null, signal: null };
        resolve(t.exit);
      });
      child.on('exit', (code, signal) => {
        t.exit = { code, signal };
        resolve(t.exit);
      });
    }),
  };
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported through 'error')
    return t;
  }
  live.add(t);
  return t;
}

/**
 * End a tracked program: its stop signal (SIGTERM unless told otherwise) to the leader, wait up
 * to graceMs so it can tell the tracker it leaves, then SIGKILL the whole group.
 * @param {Tracked} t
 * @param {number} [graceMs]
 */
export async function stopTracked(t, graceMs = STOP_GRACE_MS) {
  if (!t.exit && graceMs > 0 && t.pid > 0) {
    try {
      process.kill(t.pid, t.stopSignal);
    } catch {
      // already gone
    }
    await raceTimeout(t.exited, graceMs);
  }
  if (t.pid > 0) killGroup(t.pid, 'SIGKILL');
  await raceTimeout(t.exited, KILL_WAIT_MS);
  live.delete(t);
}

/**
 * End every process this module started and remove its temp folders. Idempotent.
 */
export async function stopAll() {
  await Promise.all([...live].map((t) => stopTracked(t, t.stopGraceMs)));
  for (const dir of [...tempDirs]) await removeTempDir(dir);
}

/**
 * @template T
 * @param {Promise<T>} p
 * @param {number} ms
 * @returns {Promise<T | undefined>}
 */
function raceTimeout(p, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  return Promise.race([
    p,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {Tracked} t
 * @param {string} what
 */
function failure(t, what) {
  const exit = t.exit
    ? ` (exited with ${t.exit.code !== null ? `code ${t.exit.code}` : `signal ${t.exit.signal}`})`
    : '';
  return new Error(
    `${t.name}: ${what}${exit}\n--- ${t.name} stderr (tail) ---\n${t.stderrTail() || '(empty)'}` +
      `\n--- ${t.name} stdout (tail) ---\n${t.stdoutTail() || '(empty)'}`,
  );
}

/**
 * Wait until `cond()` is true, or fail when the program exits or the time runs out.
 * @param {Tracked} t
 * @param {() => boolean | Promise<boolean>} cond
 * @param {number} timeoutMs
 * @param {string} what
 */
async function waitUntil(t, cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (t.exit) throw failure(t, `exited before ${what}`);
    if (Date.now() > deadline)
      throw failure(t, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

/** Ports handed out by freePort() in this process, never handed out twice. */
const givenPorts = new Set();

/**
 * A port free for both TCP and UDP on 127.0.0.1 at the time of the call.
 * @returns {Promise<number>}
 */
export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!port || givenPorts.has(port)) continue;
    const udpOk = await new Promise((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => {
        sock.close();
        resolve(false);
      });
      sock.bind(port, '127.0.0.1', () => sock.close(() => resolve(true)));
    });
    if (!udpOk) continue;
    givenPorts.add(port);
    return port;
  }
  throw new Error('no free TCP+UDP port on 127.0.0.1 after 50 tries');
}

/**
 * True once something accepts TCP connections on 127.0.0.1:port.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function tcpAccepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const done = (/** @type {boolean} */ ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Payloads and torrents

/**
 * @typedef {{ path: string[], size: number }} PayloadFile
 * @typedef {{ name: string, files: PayloadFile[] } | { name: string, size: number }} PayloadSpec
 */

/**
 * Write random bytes for a payload under `dir`.
 * @param {string} dir
 * @param {PayloadSpec} spec `{ name, size }` for a single file, `{ name, files }` for a folder
 * @returns {Promise<string>} the payload's root: `dir/name` (a file or a folder)
 */
export async function makePayload(dir, spec) {
  const root = path.join(dir, spec.name);
  const files =
    'files' in spec
      ? spec.files.map((f) => ({ file: path.join(root, ...f.path), size: f.size }))
      : [{ file: root, size: spec.size }];
  const chunk = Buffer.allocUnsafe(PAYLOAD_CHUNK_BYTES);
  for (const { file, size } of files) {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const fh = await fs.open(file, 'w');
    try {
      let left = size;
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        randomFillSync(chunk, 0, n);
        await fh.write(chunk, 0, n);
        left -= n;
      }
    } finally {
      await fh.close();
    }
  }
  return root;
}

/**
 * Run a short program to completion; throw with its stderr if it fails.
 * @param {string} name
 * @param {string} cmd
 * @param {string[]} args
 * @param {number} timeoutMs
 * @returns {Promise<string>} its stdout
 */
async function runChecked(name, cmd, args, timeoutMs) {
  const t = spawnTracked(name, cmd, args);
  const exit = await raceTimeout(t.exited, timeoutMs);
  if (!exit) {
    await stopTracked(t, 0);
    throw failure(t, `timed out after ${timeoutMs} ms`);
  }
  live.delete(t);
  killGroup(t.pid, 'SIGKILL');
  if (exit.code !== 0) throw failure(t, 'failed');
  // 'exit' can come before the last stdout chunk: wait for the pipe to close (bounded).
  await raceTimeout(
    new Promise((r) =>
      t.child.stdout?.readableEnded ? r(undefined) : t.child.stdout?.once('end', r),
    ),
    1000,
  );
  return t.stdoutTail();
}

/**
 * Make a v1 .torrent of `source` (a file or a folder) with python libtorrent.
 * @param {{ source: string, out: string, pieceLength: number, trackers: string[][] }} opts
 * @returns {Promise<{ path: string, infoHashHex: string }>}
 */
export async function createTorrent({ source, out, pieceLength, trackers }) {
  const stdout = await runChecked(
    'lt_tool create',
    PYTHON,
    [LT_TOOL, 'create', source, out, String(pieceLength), JSON.stringify(trackers)],
    START_TIMEOUT_MS,
  );
  const line = stdout.trim().split('\n').pop() ?? '';
  const { infoHash } = JSON.parse(line);
  if (!/^[0-9a-f]{40}$/.test(infoHash)) throw new Error(`createTorrent: bad info hash ${line}`);
  return { path: out, infoHashHex: infoHash };
}

// ---------------------------------------------------------------------------------------------
// opentracker

/**
 * @typedef {object} Tracker
 * @property {number} port
 * @property {string} httpUrl
 * @property {string} udpUrl
 * @property {(infoHashHex: string) => Promise<void>} addInfoHash whitelist one more info hash
 * @property {() => Promise<void>} stop
 */

/**
 * Start opentracker on 127.0.0.1 (HTTP and UDP on one port) with the given info hashes
 * whitelisted (Debian builds it in whitelist mode).
 * @param {{ infoHashes?: string[], timeoutMs?: number }} [opts]
 * @returns {Promise<Tracker>}
 */
export async function startOpentracker({ infoHashes = [], timeoutMs = START_TIMEOUT_MS } = {}) {
  const exe = findExecutable('opentracker');
  if (!exe) throw new Error('opentracker is not installed (Debian package: opentracker)');
  const dir = await makeTempDir('tdl-opentracker-');
  // opentracker chroots into dir and drops to its own user: that user must be able to read it.
  await fs.chmod(dir, 0o755);
  const whitelist = path.join(dir, 'whitelist.txt');
  /** @type {Set<string>} */
  const hashes = new Set(infoHashes.map((h) => h.toLowerCase()));
  await fs.writeFile(whitelist, [...hashes].map((h) => `${h}\n`).join(''), { mode: 0o644 });
  const asRoot = process.getuid?.() === 0;
  // In a chroot the whitelist path is relative to dir; without one it is a real path.
  await fs.writeFile(
    path.join(dir, 'opentracker.conf'),
    `access.whitelist ${asRoot ? '/whitelist.txt' : whitelist}\n`,
    { mode: 0o644 },
  );

  let lastError = /** @type {unknown} */ (null);
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['-f', path.join(dir, 'opentracker.conf'), '-i', '127.0.0.1', '-p', String(port)];
    args.push('-P', String(port), '-d', dir);
    if (asRoot) args.push('-u', '_opentracker');
    const t = spawnTracked('opentracker', exe, args, { guard: true });
    try {
      await waitUntil(t, () => tcpAccepts(port), timeoutMs, 'opentracker to listen');
    } catch (e) {
      lastError = e;
      await stopTracked(t, 0);
      continue;
    }
    const httpUrl = `http://127.0.0.1:${port}/announce`;
    return {
      port,
      httpUrl,
      udpUrl: `udp://127.0.0.1:${port}/announce`,
      async addInfoHash(infoHashHex) {
        const h = infoHashHex.toLowerCase();
        if (hashes.has(h)) return;
        hashes.add(h);
        await fs.appendFile(whitelist, `${h}\n`);
        // opentracker reloads its access list on SIGHUP (guard.py passes it on).
        process.kill(t.pid, 'SIGHUP');
        await waitUntil(
          t,
          async () => {
            const r = await announce(httpUrl, h, { event: 'stopped', left: 1, port: 9 }).catch(
              () => null,
            );
            return r !== null && r.failure === null;
          },
          timeoutMs,
          `info hash ${h} to be whitelisted`,
        );
      },
      stop: () => stopTracked(t, 0),
    };
  }
  throw lastError instanceof Error ? lastError : new Error('opentracker did not start');
}

/**
 * @typedef {{ failure: string | null, complete: number, incomplete: number, peers: { ip: string, port: number }[] }} AnnounceReply
 */

/**
 * One HTTP announce (compact), as a probe peer.
 * @param {string} trackerUrl http:// (a udp:// URL of opentracker is mapped to its HTTP side)
 * @param {string} infoHashHex
 * @param {{ event?: string, left?: number, port?: number, peerId?: Buffer, numwant?: number }} [opts]
 * @returns {Promise<AnnounceReply>}
 */
export async function announce(trackerUrl, infoHashHex, opts = {}) {
  const url = new URL(trackerUrl.replace(/^udp:/, 'http:'));
  const enc = (/** @type {Buffer} */ b) =>
    [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('');
  const peerId = opts.peerId ?? Buffer.concat([Buffer.from('-PR0001-'), randomBytes(12)]);
  const q = [
    `info_hash=${enc(Buffer.from(infoHashHex, 'hex'))}`,
    `peer_id=${enc(peerId)}`,
    `port=${opts.port ?? 9}`,
    'uploaded=0',
    'downloaded=0',
    `left=${opts.left ?? 1}`,
    'compact=1',
    `numwant=${opts.numwant ?? 50}`,
  ];
  if (opts.event) q.push(`event=${opts.event}`);
  const body = await httpGet(`${url.origin}${url.pathname}?${q.join('&')}`, HTTP_TIMEOUT_MS);
  const d = /** @type {Record<string, unknown>} */ (bencode.decode(body));
  const failureReason = d['failure reason'];
  /** @type {{ ip: string, port: number }[]} */
  const peers = [];
  const raw = d.peers;
  if (raw instanceof Uint8Array) {
    for (let i = 0; i + 6 <= raw.length; i += 6) {
      peers.push({
        ip: `${raw[i]}.${raw[i + 1]}.${raw[i + 2]}.${raw[i + 3]}`,
        port: ((raw[i + 4] ?? 0) << 8) | (raw[i + 5] ?? 0),
      });
    }
  }
  return {
    failure: failureReason instanceof Uint8Array ? Buffer.from(failureReason).toString() : null,
    complete: typeof d.complete === 'number' ? d.complete : 0,
    incomplete: typeof d.incomplete === 'number' ? d.incomplete : 0,
    peers,
  };
}

/**
 * @param {string} url
 * @param {number} timeoutMs
 * @returns {Promise<Buffer>}
 */
function httpGet(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      /** @type {Buffer[]} */
      const chunks = [];
      let size = 0;
      res.on('data', (c) => {
        size += c.length;
        if (size > 1024 * 1024) req.destroy(new Error('tracker reply over 1 MiB'));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/**
 * Poll the tracker until it lists at least `count` seeders for the torrent. Each poll announces
 * as a probe leecher (port 9) and then sends event=stopped so the probe is not handed out.
 * @param {string} trackerUrl
 * @param {string} infoHashHex
 * @param {number} count
 * @param {number} [timeoutMs]
 * @returns {Promise<AnnounceReply>} the last reply
 */
export async function waitForSeeders(trackerUrl, infoHashHex, count, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  /** @type {AnnounceReply | null} */
  let last = null;
  /** @type {unknown} */
  let lastError = null;
  const peerId = Buffer.concat([Buffer.from('-PR0001-'), randomBytes(12)]);
  for (;;) {
    try {
      last = await announce(trackerUrl, infoHashHex, { event: 'started', peerId });
      await announce(trackerUrl, infoHashHex, { event: 'stopped', peerId, numwant: 0 });
      if (last.failure) throw new Error(`tracker refused: ${last.failure}`);
      if (last.complete >= count) return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `tracker ${trackerUrl} listed ${last?.complete ?? 'no'} seeder(s) of ${infoHashHex}, ` +
          `wanted ${count}, after ${timeoutMs} ms` +
          (lastError instanceof Error ? ` (last error: ${lastError.message})` : ''),
      );
    }
    await sleep(2 * POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Seeders

/**
 * @typedef {{ port: number, name: string, stop: () => Promise<void> }} Seeder
 */

/**
 * Seed with python libtorrent (TCP only, no DHT/LSD/UPnP). Resolves once the data is checked and
 * the tracker answered the seeder's announce.
 * @param {{ torrent: string, dataDir: string, rateLimit?: number, timeoutMs?: number, requireEncryption?: boolean }} opts
 *   dataDir holds the payload root (the folder makePayload wrote into); rateLimit in bytes/s;
 *   requireEncryption: libtorrent requires encryption both ways (RC4 only)
 * @returns {Promise<Seeder>}
 */
export async function startLibtorrentSeeder({
  torrent,
  dataDir,
  rateLimit = 0,
  timeoutMs = START_TIMEOUT_MS,
  requireEncryption = false,
}) {
  const port = await freePort();
  let ready = false;
  const t = spawnTracked(
    `libtorrent seeder :${port}`,
    PYTHON,
    [LT_TOOL, 'seed', torrent, dataDir, String(port), String(Math.max(0, Math.floor(rateLimit)))],
    {
      guard: true,
      env: requireEncryption ? { ...process.env, LT_TOOL_ENCRYPTION: 'forced' } : undefined,
      onStdoutLine: (line) => {
        if (line.startsWith('READY')) ready = true;
      },
    },
  );
  try {
    await waitUntil(t, () => ready, timeoutMs, 'the libtorrent seeder to check and announce');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return { port, name: 'libtorrent', stop: () => stopTracked(t) };
}

/**
 * @typedef {object} LibtorrentPeer
 * @property {number} port where it listens (127.0.0.1)
 * @property {Map<string, string[]>} peers each peer it has seen (host:port) and where it came
 *   from as libtorrent records it (`pex`, `tracker`, …, `incoming`); a peer it dialled is named
 *   by its listening address
 * @property {(cond: () => boolean, what: string, ms: number) => Promise<void>} waitFor wait
 *   until cond() holds (fails if the peer exits first, or after ms)
 * @property {() => boolean} done it has every piece
 * @property {() => Promise<void>} stop
 */

/**
 * A libtorrent peer for the peer-exchange tests (`lt_tool.py peer`): no tracker (give it a
 * torrent without one), connected only to `connect`, and to whatever PEX tells it. Resolves
 * once its data is checked and every `connect` address has finished its handshake.
 * @param {{ torrent: string, dataDir: string, connect?: string[], downloadLimit?: number,
 *   disablePex?: boolean, host?: string, timeoutMs?: number }} opts
 *   dataDir: the payload's folder (complete for a seeder, empty for a downloader);
 *   downloadLimit: this torrent's download limit in bytes/s (applies on loopback);
 *   disablePex: no ut_pex (it neither sends nor takes peers by PEX);
 *   host: the address it listens on (default 127.0.0.1)
 * @returns {Promise<LibtorrentPeer>}
 */
export async function startLibtorrentPeer({
  torrent,
  dataDir,
  connect = [],
  downloadLimit = 0,
  disablePex = false,
  host,
  timeoutMs = START_TIMEOUT_MS,
}) {
  const port = await freePort();
  let ready = false;
  let done = false;
  /** @type {Map<string, string[]>} */
  const peers = new Map();
  const options = {
    connect,
    download_limit: Math.max(0, Math.floor(downloadLimit)),
    disable_pex: disablePex,
    ...(host ? { host } : {}),
    // Outlives any test: the test stops it long before.
    timeout_s: 600,
  };
  const t = spawnTracked(
    `libtorrent peer :${port}`,
    PYTHON,
    [LT_TOOL, 'peer', torrent, dataDir, String(port), JSON.stringify(options)],
    {
      guard: true,
      onStdoutLine: (line) => {
        if (line.startsWith('READY')) ready = true;
        else if (line === 'DONE') done = true;
        else {
          const m = /^PEER (\S+) (\S+)$/.exec(line);
          if (m?.[1] && m[2]) peers.set(m[1], m[2] === '-' ? [] : m[2].split(','));
        }
      },
    },
  );
  try {
    await waitUntil(t, () => ready, timeoutMs, 'the libtorrent peer to check and connect');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return {
    port,
    peers,
    waitFor: (cond, what, ms) => waitUntil(t, cond, ms, what),
    done: () => done,
    stop: () => stopTracked(t),
  };
}

/** aria2c options shared by seeding and downloading: loopback only, no DHT/LPD/PEX, no config. */
const ARIA2_COMMON = [
  '--no-conf=true',
  '--enable-dht=false',
  '--enable-dht6=false',
  '--bt-enable-lpd=false',
  '--enable-peer-exchange=false',
  '--disable-ipv6=true',
  '--console-log-level=warn',
  '--summary-interval=0',
  '--download-result=hide',
  '--bt-save-metadata=false',
  '--allow-overwrite=true',
  '--auto-file-renaming=false',
];

/**
 * Seed with aria2c. Resolves once it listens (it has checked the data by then); wait for the
 * tracker to list it with waitForSeeders().
 * @param {{ torrent: string, dataDir: string, rateLimit?: number, timeoutMs?: number }} opts
 *   rateLimit in bytes/s (rounded to KiB)
 * @returns {Promise<Seeder>}
 */
export async function startAria2Seeder({
  torrent,
  dataDir,
  rateLimit = 0,
  timeoutMs = START_TIMEOUT_MS,
}) {
  const exe = findExecutable('aria2c');
  if (!exe) throw new Error('aria2c is not installed (Debian package: aria2)');
  const port = await freePort();
  const args = [
    ...ARIA2_COMMON,
    '--check-integrity=true',
    '--bt-seed-unverified=true',
    '--seed-ratio=0.0',
    '--dir',
    dataDir,
    `--listen-port=${port}`,
    `--stop-with-process=${process.pid}`,
  ];
  if (rateLimit > 0)
    args.push(`--max-overall-upload-limit=${Math.max(1, Math.round(rateLimit / 1024))}K`);
  args.push(torrent);
  // aria2c leaves gracefully (event=stopped to the tracker) on SIGINT; SIGTERM is its emergency stop.
  const t = spawnTracked(`aria2c seeder :${port}`, exe, args, {
    guard: true,
    stopSignal: 'SIGINT',
  });
  try {
    await waitUntil(t, () => tcpAccepts(port), timeoutMs, 'aria2c to listen');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return { port, name: 'aria2c', stop: () => stopTracked(t) };
}

/**
 * A transmission-daemon on its own config folder: DHT, LPD, uTP and port forwarding off, RPC on
 * 127.0.0.1 without auth, peer port `port`, listening on `bind` (default: every address).
 * Resolves once its RPC listens; `remote(args)` runs transmission-remote against it. Its peer
 * port is never probed with a connection: one closed in the handshake made transmission 3.00
 * refuse that address for over two minutes.
 * @param {{ dir: string, bind?: string, requireEncryption?: boolean, timeoutMs: number }} o
 * @returns {Promise<{ t: Tracked, port: number, remote: (args: string[]) => Promise<string> }>}
 */
export async function startTransmissionDaemon({ dir, bind, requireEncryption = false, timeoutMs }) {
  const daemon = findExecutable('transmission-daemon');
  const remoteExe = findExecutable('transmission-remote');
  if (!daemon)
    throw new Error('transmission-daemon is not installed (Debian package: transmission-daemon)');
  if (!remoteExe)
    throw new Error('transmission-remote is not installed (Debian package: transmission-cli)');
  const configDir = await makeTempDir('tdl-transmission-');
  const rpcPort = await freePort();
  const port = await freePort();
  const t = spawnTracked(
    `transmission-daemon ${bind ?? ''}:${port}`,
    daemon,
    [
      '-f',
      '-g',
      configDir,
      '-p',
      String(rpcPort),
      '-P',
      String(port),
      '-w',
      dir,
      '-O', // no DHT
      '-Y', // no LPD
      '--no-utp',
      '-M', // no port forwarding
      '-T', // no RPC auth
      ...(bind === undefined ? [] : ['-i', bind]),
      '-r',
      '127.0.0.1',
      requireEncryption ? '-er' : '-et',
    ],
    // Killed at once, it would leave its /tmp/tr_session_id_* file behind (SIGTERM removes it).
    { guard: true, stopGraceMs: STOP_GRACE_MS },
  );
  const rpc = `127.0.0.1:${rpcPort}`;
  const remote = (/** @type {string[]} */ args) =>
    runChecked('transmission-remote', remoteExe, [rpc, ...args], HTTP_TIMEOUT_MS * 2);
  try {
    await waitUntil(t, () => tcpAccepts(rpcPort), timeoutMs, 'transmission RPC to listen');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return { t, port, remote };
}

/**
 * Seed with transmission-daemon (best effort: it serves slowly on loopback). Resolves once
 * transmission-remote reports the torrent verified at 100 %.
 * @param {{ torrent: string, dataDir: string, timeoutMs?: number, requireEncryption?: boolean }} opts
 *   requireEncryption: `-er` (plain handshakes refused) instead of `-et`
 * @returns {Promise<Seeder>}
 */
export async function startTransmissionSeeder({
  torrent,
  dataDir,
  timeoutMs = 2 * START_TIMEOUT_MS,
  requireEncryption = false,
}) {
  const { t, port, remote } = await startTransmissionDaemon({
    dir: dataDir,
    bind: '127.0.0.1',
    requireEncryption,
    timeoutMs,
  });
  try {
    await remote(['-a', torrent, '-w', dataDir]);
    await remote(['-t', 'all', '-v']);
    await waitUntil(
      t,
      async () => {
        const list = await remote(['-l']).catch(() => '');
        // "ID  Done  Have  ETA  Up  Down  Ratio  Status  Name": seeding once Done is 100%
        // and it is no longer verifying.
        return list
          .split('\n')
          .some((l) => /^\s*\d+\s+100%/.test(l) && !/Verif|Check|Queued/i.test(l));
      },
      timeoutMs,
      'transmission to verify the data',
    );
    await remote(['-t', 'all', '--reannounce']).catch(() => '');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return { port, name: 'transmission', stop: () => stopTracked(t) };
}

// ---------------------------------------------------------------------------------------------
// Measured runs and downloaders

/**
 * @typedef {object} MeasuredRun
 * @property {number} wallMs wall time from spawn to exit
 * @property {number} cpuMs user + system CPU time of the program (and its waited-for children)
 * @property {number} peakRssKb peak resident set size in KiB
 * @property {number | null} code exit code
 * @property {string | null} signal
 * @property {string} stdout up to MAX_STDOUT_BYTES of it
 * @property {string} stderrTail
 * @property {{ t: number, bytes: number }[]} series samples of `sample()` (ms since spawn)
 */

/**
 * Run a program to completion in its own process group, measuring wall time, CPU time and peak
 * RSS (with GNU time when installed, else measure.py's wait4). Kills the group on timeout and
 * throws with the stderr tail then; a non-zero exit is returned, not thrown.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ timeoutMs?: number, cwd?: string, env?: NodeJS.ProcessEnv, name?: string,
 *   onStdoutLine?: (line: string, tMs: number) => void,
 *   sample?: () => Promise<number>, sampleMs?: number, measurer?: 'time' | 'python' }} [opts]
 * @returns {Promise<MeasuredRun>}
 */
export async function runMeasured(cmd, args, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  const name = opts.name ?? path.basename(cmd);
  const dir = await makeTempDir('tdl-measure-');
  const usageFile = path.join(dir, 'usage.txt');
  const useTime = opts.measurer ? opts.measurer === 'time' : existsSync(GNU_TIME);
  const [file, argv] = useTime
    ? [GNU_TIME, ['-o', usageFile, '-f', '%e %U %S %M', cmd, ...args]]
    : [PYTHON, [MEASURE, usageFile, cmd, ...args]];
  let stdout = '';
  let stdoutFull = false;
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e6;
  const t = spawnTracked(name, file, argv, {
    cwd: opts.cwd,
    env: opts.env,
    onStdoutLine: (line) => {
      if (!stdoutFull) {
        if (stdout.length + line.length + 1 > MAX_STDOUT_BYTES) stdoutFull = true;
        else stdout += `${line}\n`;
      }
      opts.onStdoutLine?.(line, elapsed());
    },
  });
  /** @type {{ t: number, bytes: number }[]} */
  const series = [];
  let sampling = Boolean(opts.sample);
  const sampler = (async () => {
    while (sampling && opts.sample) {
      const tMs = elapsed();
      const bytes = await opts.sample().catch(() => null);
      if (bytes !== null) series.push({ t: tMs, bytes });
      await sleep(opts.sampleMs ?? POLL_MS);
    }
  })();
  const exit = await raceTimeout(t.exited, timeoutMs);
  const wallMs = elapsed();
  sampling = false;
  await sampler;
  if (!exit) {
    await stopTracked(t, 0);
    await removeTempDir(dir);
    throw failure(t, `timed out after ${timeoutMs} ms`);
  }
  // Let the pipes drain (bounded), then make sure nothing of the group is left.
  await raceTimeout(
    new Promise((r) =>
      t.child.stdout?.readableEnded ? r(undefined) : t.child.stdout?.once('end', r),
    ),
    1000,
  );
  await stopTracked(t, 0);
  if (opts.sample) {
    const bytes = await opts.sample().catch(() => null);
    if (bytes !== null) series.push({ t: wallMs, bytes });
  }
  const usage = await fs.readFile(usageFile, 'utf8').catch(() => '');
  await removeTempDir(dir);
  // GNU time writes "Command exited with non-zero status N" before the format line.
  const last = usage.trim().split('\n').pop() ?? '';
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec(last);
  if (!m) throw failure(t, `no resource usage recorded (${JSON.stringify(usage)})`);
  return {
    wallMs,
    cpuMs: (Number(m[2]) + Number(m[3])) * 1000,
    peakRssKb: Number(m[4]),
    code: exit.code,
    signal: exit.signal,
    stdout,
    stderrTail: t.stderrTail(),
    series,
  };
}

/**
 * Bytes written so far under `root` (allocated blocks, capped at each file's size), for
 * following a downloader that writes sparse files.
 * @param {string} root
 * @returns {Promise<number>}
 */
export async function bytesOnDisk(root) {
  let total = 0;
  /** @param {string} p */
  const walk = async (p) => {
    const st = await fs.lstat(p).catch(() => null);
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of await fs.readdir(p).catch(() => [])) await walk(path.join(p, e));
    } else if (st.isFile()) {
      total += Math.min(st.size, st.blocks * 512);
    }
  };
  await walk(root);
  return total;
}

/**
 * @param {string} name
 * @param {MeasuredRun} run
 */
function checkExit(name, run) {
  if (run.code !== 0) {
    throw new Error(
      `${name} exited with ${run.code !== null ? `code ${run.code}` : `signal ${run.signal}`}` +
        `\n--- ${name} stderr (tail) ---\n${run.stderrTail || '(empty)'}` +
        `\n--- ${name} stdout (tail) ---\n${run.stdout.slice(-STDERR_TAIL_BYTES) || '(empty)'}`,
    );
  }
}

/**
 * @typedef {{ torrent: string, outDir: string, timeoutMs?: number }} DownloadOpts
 */

/**
 * Download with libtorrent's own downloader (TCP only). `series` holds its verified bytes over time.
 * @param {DownloadOpts & { requireEncryption?: boolean }} opts
 *   requireEncryption: libtorrent requires encryption both ways (RC4 only)
 * @returns {Promise<MeasuredRun>}
 */
export async function libtorrentDownload({
  torrent,
  outDir,
  timeoutMs = 10 * 60_000,
  requireEncryption = false,
}) {
  const port = await freePort();
  /** @type {{ t: number, bytes: number }[]} */
  const progress = [];
  const run = await runMeasured(
    PYTHON,
    [LT_TOOL, 'download', torrent, outDir, String(port), String(Math.ceil(timeoutMs / 1000))],
    {
      name: 'libtorrent download',
      timeoutMs: timeoutMs + 5_000,
      env: requireEncryption ? { ...process.env, LT_TOOL_ENCRYPTION: 'forced' } : undefined,
      onStdoutLine: (line, tMs) => {
        const m = /^PROGRESS (\d+)$/.exec(line);
        if (m) progress.push({ t: tMs, bytes: Number(m[1]) });
      },
    },
  );
  checkExit('libtorrent download', run);
  return { ...run, series: progress };
}

/**
 * Download with aria2c (leaves as soon as it is done: --seed-time=0). `series` holds the bytes
 * written to disk over time.
 * @param {DownloadOpts} opts
 * @returns {Promise<MeasuredRun>}
 */
export async function aria2Download({ torrent, outDir, timeoutMs = 10 * 60_000 }) {
  const exe = findExecutable('aria2c');
  if (!exe) throw new Error('aria2c is not installed (Debian package: aria2)');
  const port = await freePort();
  const run = await runMeasured(
    exe,
    [
      ...ARIA2_COMMON,
      '--seed-time=0',
      '--file-allocation=none',
      '--dir',
      outDir,
      `--listen-port=${port}`,
      `--stop-with-process=${process.pid}`,
      `--stop=${Math.ceil(timeoutMs / 1000)}`,
      torrent,
    ],
    { name: 'aria2c download', timeoutMs: timeoutMs + 5_000, sample: () => bytesOnDisk(outDir) },
  );
  checkExit('aria2c download', run);
  return run;
}

/**
 * @typedef {MeasuredRun & { events: Record<string, unknown>[] }} TdlRun
 */

/**
 * Download with tdl's CLI (`node dist/bundle/main.js download … --json`). Resolves whatever the
 * exit code (check `code`), throws on timeout. `series` holds the verified bytes of its
 * progress events over time.
 * @param {{ torrent: string, out: string, timeoutMs?: number, peers?: string[],
 *   maxPeers?: number, args?: string[], env?: NodeJS.ProcessEnv,
 *   onEvent?: (event: Record<string, unknown>, tMs: number) => void }} opts
 *   env: tdl's environment (default: ours), e.g. an XDG_CACHE_HOME of its own for the DHT cache;
 *   onEvent: each event as it arrives, with its time of receipt (ms since spawn)
 * @returns {Promise<TdlRun>}
 */
export async function tdlDownload({
  torrent,
  out,
  timeoutMs = 10 * 60_000,
  peers = [],
  maxPeers,
  args = [],
  env,
  onEvent,
}) {
  if (!existsSync(TDL_CLI)) throw new Error(`${TDL_CLI} is missing: run npm run build`);
  const argv = [TDL_CLI, 'download', torrent, '-o', out, '--json'];
  argv.push('--timeout', String(Math.ceil(timeoutMs / 1000)));
  for (const p of peers) argv.push('--peer', p);
  if (maxPeers !== undefined) argv.push('--max-peers', String(maxPeers));
  argv.push(...args);
  /** @type {Record<string, unknown>[]} */
  const events = [];
  /** @type {{ t: number, bytes: number }[]} */
  const series = [];
  const run = await runMeasured(process.execPath, argv, {
    name: 'tdl download',
    timeoutMs: timeoutMs + 5_000,
    env,
    onStdoutLine: (line, tMs) => {
      if (!line.startsWith('{')) return;
      try {
        const ev = JSON.parse(line);
        events.push(ev);
        onEvent?.(ev, tMs);
        if (ev.event === 'progress' && typeof ev.downloaded === 'number') {
          // Time of receipt since spawn, like the other clients' series (not tdl's own clock).
          series.push({ t: tMs, bytes: ev.downloaded });
        }
      } catch {
        // not an event line
      }
    },
  });
  const done = events.find((e) => e.event === 'done');
  const last = series.at(-1)?.bytes ?? 0;
  if (done && typeof done.size === 'number' && done.size >= last) {
    series.push({ t: run.wallMs, bytes: done.size });
  }
  return { ...run, events, series };
}

/**
 * Throw (with tdl's stderr and last events) unless the run exited 0.
 * @param {TdlRun} run
 */
export function assertTdlOk(run) {
  if (run.code === 0) return;
  const lastEvents = run.events
    .filter((e) => e.event !== 'progress')
    .slice(-10)
    .map((e) => JSON.stringify(e))
    .join('\n');
  throw new Error(
    `tdl exited with ${run.code !== null ? `code ${run.code}` : `signal ${run.signal}`}` +
      `\n--- tdl stderr (tail) ---\n${run.stderrTail || '(empty)'}` +
      `\n--- tdl events (last non-progress) ---\n${lastEvents || '(none)'}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Magnet links

/**
 * A magnet link for an info hash: `xt=urn:btih:`, then `dn`, one `tr` per tracker and one
 * `x.pe` per peer (`host:port`), each value percent-encoded.
 * @param {string} infoHashHex
 * @param {{ name?: string, trackers?: string[], peers?: string[] }} [opts]
 * @returns {string}
 */
export function magnetLink(infoHashHex, { name, trackers = [], peers = [] } = {}) {
  const parts = [`xt=urn:btih:${infoHashHex.toLowerCase()}`];
  if (name !== undefined) parts.push(`dn=${encodeURIComponent(name)}`);
  for (const tr of trackers) parts.push(`tr=${encodeURIComponent(tr)}`);
  for (const pe of peers) parts.push(`x.pe=${encodeURIComponent(pe)}`);
  return `magnet:?${parts.join('&')}`;
}

/**
 * Download a magnet link with libtorrent's own downloader (`lt_tool.py download-magnet`, TCP
 * only, no DHT: the magnet's `tr` and `x.pe` are its only sources). `series` holds its verified
 * bytes over time, `metadataMs` when it had the metadata (ms since spawn).
 * @param {{ magnet: string, outDir: string, timeoutMs?: number }} opts
 * @returns {Promise<MeasuredRun & { metadataMs: number }>}
 */
export async function libtorrentMagnetDownload({ magnet, outDir, timeoutMs = 10 * 60_000 }) {
  const port = await freePort();
  /** @type {{ t: number, bytes: number }[]} */
  const progress = [];
  let metadataMs = -1;
  const run = await runMeasured(
    PYTHON,
    [LT_TOOL, 'download-magnet', magnet, outDir, String(port), String(Math.ceil(timeoutMs / 1000))],
    {
      name: 'libtorrent magnet download',
      timeoutMs: timeoutMs + 5_000,
      onStdoutLine: (line, tMs) => {
        const m = /^PROGRESS (\d+)$/.exec(line);
        if (m) progress.push({ t: tMs, bytes: Number(m[1]) });
        else if (line.startsWith('METADATA ')) metadataMs = tMs;
      },
    },
  );
  checkExit('libtorrent magnet download', run);
  return { ...run, series: progress, metadataMs };
}

/**
 * Fetch only the metadata of a magnet link with aria2c (`--bt-metadata-only=true
 * --bt-save-metadata=true`): it saves `<info hash>.torrent` in outDir and exits.
 * @param {{ magnet: string, outDir: string, timeoutMs?: number }} opts
 * @returns {Promise<MeasuredRun & { torrentPath: string }>}
 */
export async function aria2FetchMetadata({ magnet, outDir, timeoutMs = 10 * 60_000 }) {
  const exe = findExecutable('aria2c');
  if (!exe) throw new Error('aria2c is not installed (Debian package: aria2)');
  const port = await freePort();
  const run = await runMeasured(
    exe,
    [
      ...ARIA2_COMMON.filter((a) => !a.startsWith('--bt-save-metadata')),
      '--bt-metadata-only=true',
      '--bt-save-metadata=true',
      '--seed-time=0',
      '--dir',
      outDir,
      `--listen-port=${port}`,
      `--stop-with-process=${process.pid}`,
      `--stop=${Math.ceil(timeoutMs / 1000)}`,
      magnet,
    ],
    { name: 'aria2c metadata', timeoutMs: timeoutMs + 5_000 },
  );
  checkExit('aria2c metadata', run);
  const m = /btih:([0-9a-fA-F]{40})/.exec(magnet);
  const saved = (await fs.readdir(outDir)).filter((f) => f.endsWith('.torrent'));
  const want = m?.[1] ? `${m[1].toLowerCase()}.torrent` : undefined;
  const name = saved.find((f) => f === want) ?? saved[0];
  if (!name) {
    throw new Error(
      `aria2c exited 0 but saved no .torrent in ${outDir}` +
        `\n--- aria2c stderr (tail) ---\n${run.stderrTail || '(empty)'}`,
    );
  }
  return { ...run, torrentPath: path.join(outDir, name) };
}

// ---------------------------------------------------------------------------------------------
// Comparing trees

/**
 * @param {string} file
 * @returns {Promise<string>}
 */
function sha1File(file) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha1');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/**
 * Compare two files or folders byte for byte.
 * @param {string} expected
 * @param {string} actual
 * @returns {Promise<string[]>} the differences, empty when equal
 */
export async function compareTrees(expected, actual) {
  /** @type {string[]} */
  const diffs = [];
  /**
   * @param {string} a
   * @param {string} b
   * @param {string} rel
   */
  const walk = async (a, b, rel) => {
    const sa = await fs.stat(a).catch(() => null);
    const sb = await fs.stat(b).catch(() => null);
    if (!sa) return void diffs.push(`${rel}: missing in source`);
    if (!sb) return void diffs.push(`${rel || '.'}: missing`);
    if (sa.isDirectory() !== sb.isDirectory()) return void diffs.push(`${rel}: file vs folder`);
    if (sa.isDirectory()) {
      const ea = (await fs.readdir(a)).sort();
      const eb = (await fs.readdir(b)).sort();
      for (const e of eb) if (!ea.includes(e)) diffs.push(`${path.join(rel, e)}: unexpected`);
      for (const e of ea) await walk(path.join(a, e), path.join(b, e), path.join(rel, e));
      return;
    }
    if (sa.size !== sb.size)
      return void diffs.push(`${rel || '.'}: size ${sb.size}, expected ${sa.size}`);
    if ((await sha1File(a)) !== (await sha1File(b))) diffs.push(`${rel || '.'}: content differs`);
  };
  await walk(expected, actual, '');
  if (diffs[0] === '.: missing') {
    // Say what is there instead (a leftover temporary name, the wrong folder level...).
    const parent = path.dirname(actual);
    const there = await fs.readdir(parent).catch(() => null);
    diffs[0] =
      `${path.basename(actual)}: missing (${parent} holds ` +
      `${there === null ? 'nothing: it does not exist' : there.length ? there.join(', ') : 'nothing'})`;
  }
  return diffs;
}

// ---------------------------------------------------------------------------------------------
// tdl as a long-running peer, libtorrent leechers with settings, hanging addresses

/**
 * @typedef {object} TdlPeer
 * @property {number} port the port tdl listens on (from its `started` event)
 * @property {string} name
 * @property {Record<string, unknown>[]} events its --json events so far
 * @property {(event: string, timeoutMs?: number) => Promise<Record<string, unknown>>} waitForEvent
 *   the first event of that name (already seen or still to come); throws when tdl exits first
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {() => Promise<{ code: number | null, signal: NodeJS.Signals | null } | null>} stop
 *   SIGINT (tdl leaves cleanly, telling its trackers), SIGKILL after STOP_GRACE_MS; its exit
 */

/**
 * Start tdl's CLI as a peer that stays up: `tdl seed` (data already complete) or
 * `tdl download` (with `--seed` in `args` it keeps serving once complete). Resolves once tdl
 * listens (its `started` event), rejects when it exits first or the time runs out.
 * @param {{ command: 'seed' | 'download', torrent: string, out: string, port?: number,
 *   peers?: string[], args?: string[], timeoutMs?: number, env?: NodeJS.ProcessEnv }} opts
 *   env: tdl's environment (default: ours)
 * @returns {Promise<TdlPeer>}
 */
export async function startTdlPeer({
  command,
  torrent,
  out,
  port,
  peers = [],
  args = [],
  timeoutMs = START_TIMEOUT_MS,
  env,
}) {
  if (!existsSync(TDL_CLI)) throw new Error(`${TDL_CLI} is missing: run npm run build`);
  const listenPort = port ?? (await freePort());
  const argv = [TDL_CLI, command, torrent, '-o', out, '--json', '--port', String(listenPort)];
  argv.push('--bind', '127.0.0.1');
  for (const p of peers) argv.push('--peer', p);
  argv.push(...args);
  /** @type {Record<string, unknown>[]} */
  const events = [];
  /** @type {Set<() => void>} */
  const waiters = new Set();
  const t = spawnTracked(`tdl ${command} :${listenPort}`, process.execPath, argv, {
    env,
    stopSignal: 'SIGINT',
    onStdoutLine: (line) => {
      if (!line.startsWith('{')) return;
      try {
        // Progress events are many and of no use here: keep the others.
        const ev = JSON.parse(line);
        if (ev.event !== 'progress') events.push(ev);
      } catch {
        return;
      }
      for (const w of waiters) w();
    },
  });
  /** @type {(event: string, ms?: number) => Promise<Record<string, unknown>>} */
  const waitForEvent = async (event, ms = timeoutMs) => {
    /** @type {Record<string, unknown> | undefined} */
    let found;
    await waitUntil(
      t,
      () => {
        found = events.find((e) => e.event === event);
        return found !== undefined;
      },
      ms,
      `tdl's ${event} event`,
    );
    return /** @type {Record<string, unknown>} */ (found);
  };
  try {
    await waitForEvent('started');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return {
    port: listenPort,
    name: 'tdl',
    events,
    waitForEvent,
    exited: t.exited,
    stop: async () => {
      await stopTracked(t);
      return t.exit;
    },
  };
}

/**
 * Download with libtorrent's downloader set up as a tit-for-tat leecher (`lt_tool.py leech`).
 * `series` holds its verified bytes over time; `doneMs` when it had every piece (before its
 * seeding time and leaving).
 * @param {DownloadOpts & { uploadRateLimit?: number, unchokeSlots?: number, seedS?: number }} opts
 *   uploadRateLimit in bytes/s (0: none), applied on loopback too
 * @returns {Promise<MeasuredRun & { doneMs: number }>}
 */
export async function libtorrentLeech({
  torrent,
  outDir,
  timeoutMs = 10 * 60_000,
  uploadRateLimit = 0,
  unchokeSlots,
  seedS = 0,
}) {
  const port = await freePort();
  /** @type {{ t: number, bytes: number }[]} */
  const progress = [];
  let doneMs = -1;
  /** @type {Record<string, number>} */
  const options = { upload_rate_limit: uploadRateLimit, seed_s: seedS };
  if (unchokeSlots !== undefined) options.unchoke_slots_limit = unchokeSlots;
  const run = await runMeasured(
    PYTHON,
    [
      LT_TOOL,
      'leech',
      torrent,
      outDir,
      String(port),
      String(Math.ceil(timeoutMs / 1000)),
      JSON.stringify(options),
    ],
    {
      name: 'libtorrent leech',
      timeoutMs: timeoutMs + seedS * 1000 + 5_000,
      onStdoutLine: (line, tMs) => {
        const m = /^PROGRESS (\d+)$/.exec(line);
        if (m) progress.push({ t: tMs, bytes: Number(m[1]) });
        else if (line === 'DONE') doneMs = tMs;
      },
    },
  );
  checkExit('libtorrent leech', run);
  return { ...run, series: progress, doneMs: doneMs >= 0 ? doneMs : run.wallMs };
}

/**
 * @typedef {{ ports: number[], stop: () => Promise<void> }} HangingPeers
 */

/**
 * `count` addresses on 127.0.0.1 whose TCP connects hang (SYNs dropped: a listener with a full
 * accept queue that never accepts), like peers behind a firewall that drops packets.
 * @param {number} count
 * @param {number} [timeoutMs]
 * @returns {Promise<HangingPeers>}
 */
export async function startHangingPeers(count, timeoutMs = START_TIMEOUT_MS) {
  /** @type {number[]} */
  let ports = [];
  const t = spawnTracked('hanging listeners', PYTHON, [LT_TOOL, 'hang', String(count)], {
    guard: true,
    onStdoutLine: (line) => {
      const m = /^PORTS ([\d,]+)$/.exec(line);
      if (m?.[1]) ports = m[1].split(',').map(Number);
    },
  });
  try {
    await waitUntil(t, () => ports.length === count, timeoutMs, 'the hanging listeners');
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return { ports, stop: () => stopTracked(t, 0) };
}
