/**
 * aria2c and transmission-daemon as peers of the peer-exchange (ut_pex) interop tests: each on
 * an address of its own in 127.0.0.0/8 (aria2c leaves out of its PEX messages the peers that
 * share the receiver's address; transmission keeps one connection per address), no tracker
 * unless given one, no DHT, no LPD, PEX on.
 */
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import {
  assertTdlOk,
  compareTrees,
  createTorrent,
  findExecutable,
  freePort,
  makePayload,
  makeTempDir,
  removeTempDir,
  spawnTracked,
  startTransmissionDaemon,
  stopTracked,
  tdlDownload,
  type PayloadSpec,
  type TdlRun,
} from '../../scripts/lib/real-peers.mjs';
import { checkEvent } from '../helpers/events-schema.js';
import { decodeStrict, encode, isDict } from '../../src/metainfo/bencode.js';

const POLL_MS = 200;

/** Connects to host:port, true once something accepts. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1_000, () => done(false));
  });
}

/** Polls `cond` until it holds; throws with `what` after `ms` or when `exited` settles first. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms: number,
  exited?: { exit: unknown; stderrTail: () => string },
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (exited?.exit) {
      throw new Error(`exited while waiting for ${what}: ${exited.stderrTail().slice(-2000)}`);
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * A non-loopback IPv4 address of this machine, or null. transmission takes no loopback address
 * from a PEX message (its `tr_address_is_valid_for_peers` calls 127.0.0.0/8 "martian"), so a
 * peer it is to learn by PEX must listen on another address.
 */
export function nonLoopbackIPv4(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** What a test started, stopped by `withPeers`. */
export type Started = { stop: () => Promise<unknown> }[];

/** Runs `body`; what it puts in `started` is stopped, last first, however it ends. */
export async function withPeers(body: (started: Started) => Promise<void>): Promise<void> {
  const started: Started = [];
  try {
    await body(started);
  } finally {
    for (const p of started.reverse()) await p.stop();
  }
}

/** The payload in a fresh temporary folder, and its torrents without a tracker: public, private. */
export async function pexTorrents(
  prefix: string,
  payload: PayloadSpec,
  pieceLength: number,
): Promise<{ root: string; dataDir: string; torrent: string; privateTorrent: string }> {
  const work = await makeTempDir(prefix);
  const dataDir = path.join(work, 'data');
  const root = await makePayload(dataDir, payload);
  const out = path.join(work, 'pex.torrent');
  const torrent = (await createTorrent({ source: root, out, pieceLength, trackers: [] })).path;
  const privateTorrent = await privateCopy(torrent, path.join(work, 'private.torrent'));
  return { root, dataDir, torrent, privateTorrent };
}

/**
 * tdl downloads `torrent` into a fresh folder given only the relay's address (`relayAt`), so the
 * seeder (`seederAt`) can be learnt from the relay's PEX message alone. Checks what a user would:
 * exit 0, every event against the schema, the files byte for byte against `root`, and the
 * seeder connected with `source: pex`. Returns the run and when tdl first named the seeder in an
 * event (ms after its start; -1 if never).
 */
export async function tdlLearnsSeeder(o: {
  torrent: string;
  root: string;
  payloadName: string;
  relayAt: string;
  seederAt: string;
  args: string[];
  timeoutMs: number;
}): Promise<{ run: TdlRun; learntAt: number }> {
  const out = await makeTempDir('tdl-pex-out-');
  let learntAt = -1;
  const run = await tdlDownload({
    torrent: o.torrent,
    out,
    peers: [o.relayAt],
    args: o.args,
    timeoutMs: o.timeoutMs,
    onEvent: (e, t) => {
      if (learntAt < 0 && e.event === 'peer' && e.address === o.seederAt) learntAt = t;
    },
  });
  assertTdlOk(run);
  for (const e of run.events) checkEvent(e);
  expect(await compareTrees(o.root, path.join(out, o.payloadName))).toEqual([]);
  expect(run.events).toContainEqual(
    expect.objectContaining({ address: o.seederAt, status: 'connected', source: 'pex' }),
  );
  await removeTempDir(out);
  return { run, learntAt };
}

/** A copy of `torrent` with `private` set in its info dictionary (a new info hash). */
export async function privateCopy(torrent: string, out: string): Promise<string> {
  const meta = decodeStrict(await readFile(torrent)).value;
  if (!isDict(meta) || !isDict(meta.info)) throw new Error(`${torrent}: not a torrent`);
  await writeFile(out, encode({ ...meta, info: { ...meta.info, private: 1 } }));
  return out;
}

export interface Aria2Peer {
  host: string;
  port: number;
  /** Its log (level info): the ut_pex messages it sends and receives, one a line. */
  log: () => Promise<string>;
  /** It exited 0 (with --seed-time=0: it has every piece). */
  done: () => boolean;
  stop: () => Promise<void>;
}

/**
 * aria2c with PEX on, downloading into `dir` on `host` (it listens and dials from there), and
 * leaving once complete. `trackers`: announce URLs added to the torrent's (the way to make it
 * dial a given peer: it lists in PEX only the peers it dialled itself). `downloadLimit` in
 * bytes/s (rounded up to KiB).
 */
export async function startAria2Peer(opts: {
  torrent: string;
  dir: string;
  host: string;
  trackers?: string[];
  downloadLimit?: number;
  timeoutMs: number;
}): Promise<Aria2Peer> {
  const exe = findExecutable('aria2c');
  if (!exe) throw new Error('aria2c is not installed (Debian package: aria2)');
  const port = await freePort();
  const logFile = path.join(await makeTempDir('tdl-pex-aria2-log-'), 'aria2.log');
  const args = [
    '--no-conf=true',
    '--enable-dht=false',
    '--enable-dht6=false',
    '--bt-enable-lpd=false',
    '--enable-peer-exchange=true',
    '--disable-ipv6=true',
    '--console-log-level=warn',
    '--summary-interval=0',
    '--download-result=hide',
    '--bt-save-metadata=false',
    '--allow-overwrite=true',
    '--auto-file-renaming=false',
    '--seed-time=0',
    '--file-allocation=none',
    `--interface=${opts.host}`,
    `--listen-port=${port}`,
    `--stop-with-process=${process.pid}`,
    `--dir=${opts.dir}`,
    `--log=${logFile}`,
    '--log-level=info',
  ];
  for (const t of opts.trackers ?? []) args.push(`--bt-tracker=${t}`);
  if (opts.downloadLimit) {
    args.push(`--max-download-limit=${Math.max(1, Math.ceil(opts.downloadLimit / 1024))}K`);
  }
  args.push(opts.torrent);
  const t = spawnTracked(`aria2c peer ${opts.host}:${port}`, exe, args, {
    guard: true,
    stopSignal: 'SIGINT',
  });
  try {
    await waitFor(() => accepts(opts.host, port), 'aria2c to listen', opts.timeoutMs, t);
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return {
    host: opts.host,
    port,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    done: () => (t.exit as { code: number | null } | null)?.code === 0,
    stop: () => stopTracked(t),
  };
}

export interface TransmissionPeer {
  /** Where to reach it. */
  host: string;
  port: number;
  /** The addresses of its connected peers (transmission-remote -pi). */
  peers: () => Promise<string[]>;
  /** Percent done of the torrent, from transmission-remote -l (-1 when unknown). */
  percentDone: () => Promise<number>;
  stop: () => Promise<void>;
}

/**
 * transmission-daemon on `host` (it listens and dials from there: one connection per address;
 * undefined: every address, dialling from the one the route gives), PEX on (its default), no
 * DHT, LPD, uTP or port mapping, with `torrent` added into `dir`. `downloadLimit` in KB/s.
 */
export async function startTransmissionPeer(opts: {
  torrent: string;
  dir: string;
  host?: string;
  downloadLimit?: number;
  timeoutMs: number;
}): Promise<TransmissionPeer> {
  const { t, port, remote } = await startTransmissionDaemon({
    dir: opts.dir,
    ...(opts.host === undefined ? {} : { bind: opts.host }),
    timeoutMs: opts.timeoutMs,
  });
  try {
    await remote(['-a', opts.torrent, '-w', opts.dir]);
    if (opts.downloadLimit) await remote(['-d', String(opts.downloadLimit)]);
  } catch (e) {
    await stopTracked(t, 0);
    throw e;
  }
  return {
    host: opts.host ?? '127.0.0.1',
    port,
    peers: async () =>
      (await remote(['-t', 'all', '-pi']).catch(() => ''))
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[0] ?? '')
        .filter((a) => net.isIP(a) !== 0),
    percentDone: async () => {
      const list = await remote(['-l']).catch(() => '');
      const m = /^\s*\d+\s+(\d+)%/m.exec(list);
      return m?.[1] ? Number(m[1]) : -1;
    },
    stop: () => stopTracked(t),
  };
}
