// Generated from the JSDoc of real-peers.mjs by scripts/lib/gen-types.sh: do not edit.
/**
 * Which of the named programs (keys of PROGRAMS) are missing.
 * @param {string[]} names
 * @returns {{ name: string, pkg: string }[]}
 */
export function missingPrograms(names: string[]): {
  name: string;
  pkg: string;
}[];
/**
 * @param {string} name
 * @returns {string | null} the absolute path of an executable found on PATH
 */
export function findExecutable(name: string): string | null;
/**
 * A fresh folder under os.tmpdir(), removed by stopAll() (or at exit) unless removed before.
 * @param {string} [prefix]
 */
export function makeTempDir(prefix?: string): Promise<string>;
/** @param {string} dir */
export function removeTempDir(dir: string): Promise<void>;
/**
 * Start a program in its own process group and keep track of it.
 * @param {string} name a label for messages
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ cwd?: string, env?: NodeJS.ProcessEnv, guard?: boolean, stopSignal?: NodeJS.Signals,
 *   stopGraceMs?: number, onStdoutLine?: (line: string) => void }} [opts]
 * @returns {Tracked}
 */
export function spawnTracked(
  name: string,
  cmd: string,
  args: string[],
  opts?: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    guard?: boolean;
    stopSignal?: NodeJS.Signals;
    stopGraceMs?: number;
    onStdoutLine?: (line: string) => void;
  },
): Tracked;
/**
 * End a tracked program: its stop signal (SIGTERM unless told otherwise) to the leader, wait up
 * to graceMs so it can tell the tracker it leaves, then SIGKILL the whole group.
 * @param {Tracked} t
 * @param {number} [graceMs]
 */
export function stopTracked(t: Tracked, graceMs?: number): Promise<void>;
/**
 * End every process this module started and remove its temp folders. Idempotent.
 */
export function stopAll(): Promise<void>;
/**
 * A port free for both TCP and UDP on 127.0.0.1 at the time of the call.
 * @returns {Promise<number>}
 */
export function freePort(): Promise<number>;
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
export function makePayload(dir: string, spec: PayloadSpec): Promise<string>;
/**
 * Make a v1 .torrent of `source` (a file or a folder) with python libtorrent.
 * @param {{ source: string, out: string, pieceLength: number, trackers: string[][] }} opts
 * @returns {Promise<{ path: string, infoHashHex: string }>}
 */
export function createTorrent({
  source,
  out,
  pieceLength,
  trackers,
}: {
  source: string;
  out: string;
  pieceLength: number;
  trackers: string[][];
}): Promise<{
  path: string;
  infoHashHex: string;
}>;
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
export function startOpentracker({
  infoHashes,
  timeoutMs,
}?: {
  infoHashes?: string[];
  timeoutMs?: number;
}): Promise<Tracker>;
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
export function announce(
  trackerUrl: string,
  infoHashHex: string,
  opts?: {
    event?: string;
    left?: number;
    port?: number;
    peerId?: Buffer;
    numwant?: number;
  },
): Promise<AnnounceReply>;
/**
 * Poll the tracker until it lists at least `count` seeders for the torrent. Each poll announces
 * as a probe leecher (port 9) and then sends event=stopped so the probe is not handed out.
 * @param {string} trackerUrl
 * @param {string} infoHashHex
 * @param {number} count
 * @param {number} [timeoutMs]
 * @returns {Promise<AnnounceReply>} the last reply
 */
export function waitForSeeders(
  trackerUrl: string,
  infoHashHex: string,
  count: number,
  timeoutMs?: number,
): Promise<AnnounceReply>;
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
export function startLibtorrentSeeder({
  torrent,
  dataDir,
  rateLimit,
  timeoutMs,
  requireEncryption,
}: {
  torrent: string;
  dataDir: string;
  rateLimit?: number;
  timeoutMs?: number;
  requireEncryption?: boolean;
}): Promise<Seeder>;
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
export function startLibtorrentPeer({
  torrent,
  dataDir,
  connect,
  downloadLimit,
  disablePex,
  host,
  timeoutMs,
}: {
  torrent: string;
  dataDir: string;
  connect?: string[];
  downloadLimit?: number;
  disablePex?: boolean;
  host?: string;
  timeoutMs?: number;
}): Promise<LibtorrentPeer>;
/**
 * Seed with aria2c. Resolves once it listens (it has checked the data by then); wait for the
 * tracker to list it with waitForSeeders().
 * @param {{ torrent: string, dataDir: string, rateLimit?: number, timeoutMs?: number }} opts
 *   rateLimit in bytes/s (rounded to KiB)
 * @returns {Promise<Seeder>}
 */
export function startAria2Seeder({
  torrent,
  dataDir,
  rateLimit,
  timeoutMs,
}: {
  torrent: string;
  dataDir: string;
  rateLimit?: number;
  timeoutMs?: number;
}): Promise<Seeder>;
/**
 * A transmission-daemon on its own config folder: DHT, LPD, uTP and port forwarding off, RPC on
 * 127.0.0.1 without auth, peer port `port`, listening on `bind` (default: every address).
 * Resolves once its RPC listens; `remote(args)` runs transmission-remote against it. Its peer
 * port is never probed with a connection: one closed in the handshake made transmission 3.00
 * refuse that address for over two minutes.
 * @param {{ dir: string, bind?: string, requireEncryption?: boolean, timeoutMs: number }} o
 * @returns {Promise<{ t: Tracked, port: number, remote: (args: string[]) => Promise<string> }>}
 */
export function startTransmissionDaemon({
  dir,
  bind,
  requireEncryption,
  timeoutMs,
}: {
  dir: string;
  bind?: string;
  requireEncryption?: boolean;
  timeoutMs: number;
}): Promise<{
  t: Tracked;
  port: number;
  remote: (args: string[]) => Promise<string>;
}>;
/**
 * Seed with transmission-daemon (best effort: it serves slowly on loopback). Resolves once
 * transmission-remote reports the torrent verified at 100 %.
 * @param {{ torrent: string, dataDir: string, timeoutMs?: number, requireEncryption?: boolean }} opts
 *   requireEncryption: `-er` (plain handshakes refused) instead of `-et`
 * @returns {Promise<Seeder>}
 */
export function startTransmissionSeeder({
  torrent,
  dataDir,
  timeoutMs,
  requireEncryption,
}: {
  torrent: string;
  dataDir: string;
  timeoutMs?: number;
  requireEncryption?: boolean;
}): Promise<Seeder>;
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
export function runMeasured(
  cmd: string,
  args: string[],
  opts?: {
    timeoutMs?: number;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    name?: string;
    onStdoutLine?: (line: string, tMs: number) => void;
    sample?: () => Promise<number>;
    sampleMs?: number;
    measurer?: 'time' | 'python';
  },
): Promise<MeasuredRun>;
/**
 * Bytes written so far under `root` (allocated blocks, capped at each file's size), for
 * following a downloader that writes sparse files.
 * @param {string} root
 * @returns {Promise<number>}
 */
export function bytesOnDisk(root: string): Promise<number>;
/**
 * @typedef {{ torrent: string, outDir: string, timeoutMs?: number }} DownloadOpts
 */
/**
 * Download with libtorrent's own downloader (TCP only). `series` holds its verified bytes over time.
 * @param {DownloadOpts & { requireEncryption?: boolean }} opts
 *   requireEncryption: libtorrent requires encryption both ways (RC4 only)
 * @returns {Promise<MeasuredRun>}
 */
export function libtorrentDownload({
  torrent,
  outDir,
  timeoutMs,
  requireEncryption,
}: DownloadOpts & {
  requireEncryption?: boolean;
}): Promise<MeasuredRun>;
/**
 * Download with aria2c (leaves as soon as it is done: --seed-time=0). `series` holds the bytes
 * written to disk over time.
 * @param {DownloadOpts} opts
 * @returns {Promise<MeasuredRun>}
 */
export function aria2Download({ torrent, outDir, timeoutMs }: DownloadOpts): Promise<MeasuredRun>;
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
export function tdlDownload({
  torrent,
  out,
  timeoutMs,
  peers,
  maxPeers,
  args,
  env,
  onEvent,
}: {
  torrent: string;
  out: string;
  timeoutMs?: number;
  peers?: string[];
  maxPeers?: number;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  onEvent?: (event: Record<string, unknown>, tMs: number) => void;
}): Promise<TdlRun>;
/**
 * Throw (with tdl's stderr and last events) unless the run exited 0.
 * @param {TdlRun} run
 */
export function assertTdlOk(run: TdlRun): void;
/**
 * A magnet link for an info hash: `xt=urn:btih:`, then `dn`, one `tr` per tracker and one
 * `x.pe` per peer (`host:port`), each value percent-encoded.
 * @param {string} infoHashHex
 * @param {{ name?: string, trackers?: string[], peers?: string[] }} [opts]
 * @returns {string}
 */
export function magnetLink(
  infoHashHex: string,
  {
    name,
    trackers,
    peers,
  }?: {
    name?: string;
    trackers?: string[];
    peers?: string[];
  },
): string;
/**
 * Download a magnet link with libtorrent's own downloader (`lt_tool.py download-magnet`, TCP
 * only, no DHT: the magnet's `tr` and `x.pe` are its only sources). `series` holds its verified
 * bytes over time, `metadataMs` when it had the metadata (ms since spawn).
 * @param {{ magnet: string, outDir: string, timeoutMs?: number }} opts
 * @returns {Promise<MeasuredRun & { metadataMs: number }>}
 */
export function libtorrentMagnetDownload({
  magnet,
  outDir,
  timeoutMs,
}: {
  magnet: string;
  outDir: string;
  timeoutMs?: number;
}): Promise<
  MeasuredRun & {
    metadataMs: number;
  }
>;
/**
 * Fetch only the metadata of a magnet link with aria2c (`--bt-metadata-only=true
 * --bt-save-metadata=true`): it saves `<info hash>.torrent` in outDir and exits.
 * @param {{ magnet: string, outDir: string, timeoutMs?: number }} opts
 * @returns {Promise<MeasuredRun & { torrentPath: string }>}
 */
export function aria2FetchMetadata({
  magnet,
  outDir,
  timeoutMs,
}: {
  magnet: string;
  outDir: string;
  timeoutMs?: number;
}): Promise<
  MeasuredRun & {
    torrentPath: string;
  }
>;
/**
 * Compare two files or folders byte for byte.
 * @param {string} expected
 * @param {string} actual
 * @returns {Promise<string[]>} the differences, empty when equal
 */
export function compareTrees(expected: string, actual: string): Promise<string[]>;
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
export function startTdlPeer({
  command,
  torrent,
  out,
  port,
  peers,
  args,
  timeoutMs,
  env,
}: {
  command: 'seed' | 'download';
  torrent: string;
  out: string;
  port?: number;
  peers?: string[];
  args?: string[];
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}): Promise<TdlPeer>;
/**
 * Download with libtorrent's downloader set up as a tit-for-tat leecher (`lt_tool.py leech`).
 * `series` holds its verified bytes over time; `doneMs` when it had every piece (before its
 * seeding time and leaving).
 * @param {DownloadOpts & { uploadRateLimit?: number, unchokeSlots?: number, seedS?: number }} opts
 *   uploadRateLimit in bytes/s (0: none), applied on loopback too
 * @returns {Promise<MeasuredRun & { doneMs: number }>}
 */
export function libtorrentLeech({
  torrent,
  outDir,
  timeoutMs,
  uploadRateLimit,
  unchokeSlots,
  seedS,
}: DownloadOpts & {
  uploadRateLimit?: number;
  unchokeSlots?: number;
  seedS?: number;
}): Promise<
  MeasuredRun & {
    doneMs: number;
  }
>;
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
export function startHangingPeers(count: number, timeoutMs?: number): Promise<HangingPeers>;
/** Debian's Python: the python3-libtorrent module is built for it (not for another python3). */
export const PYTHON: '/usr/bin/python3';
/** GNU time (Debian package `time`); when missing, measure.py does the same job. */
export const GNU_TIME: '/usr/bin/time';
export const REPO_ROOT: string;
export function shellQuote(s: string): string;
/** tdl's built CLI (`npm run build`); the TDL_CLI environment variable points elsewhere. */
export const TDL_CLI: string;
/** How much of a program's stdout / stderr is kept for error messages. */
export const STDERR_TAIL_BYTES: number;
/** The most stdout a measured run keeps (tdl's --json events for a long run fit easily). */
export const MAX_STDOUT_BYTES: number;
/** How long stop() waits after SIGTERM (so a client can tell the tracker it left) before SIGKILL. */
export const STOP_GRACE_MS: 2000;
/** How long we wait for a program to exit after SIGKILL. */
export const KILL_WAIT_MS: 3000;
/** Default bound on a server's start-up (listening, data checked, first announce). */
export const START_TIMEOUT_MS: 60000;
/** One HTTP request to the tracker. */
export const HTTP_TIMEOUT_MS: 5000;
/** Poll interval of waits and of on-disk progress sampling. */
export const POLL_MS: 100;
/** Write chunk of makePayload. */
export const PAYLOAD_CHUNK_BYTES: number;
/**
 * Programs the harness can use, how to find them and which Debian package provides them.
 * @type {Record<string, { pkg: string, check: () => boolean }>}
 */
export const PROGRAMS: Record<
  string,
  {
    pkg: string;
    check: () => boolean;
  }
>;
export type PayloadFile = {
  path: string[];
  size: number;
};
export type PayloadSpec =
  | {
      name: string;
      files: PayloadFile[];
    }
  | {
      name: string;
      size: number;
    };
export type Tracker = {
  port: number;
  httpUrl: string;
  udpUrl: string;
  /**
   * whitelist one more info hash
   */
  addInfoHash: (infoHashHex: string) => Promise<void>;
  stop: () => Promise<void>;
};
export type AnnounceReply = {
  failure: string | null;
  complete: number;
  incomplete: number;
  peers: {
    ip: string;
    port: number;
  }[];
};
export type Seeder = {
  port: number;
  name: string;
  stop: () => Promise<void>;
};
export type LibtorrentPeer = {
  /**
   * where it listens (127.0.0.1)
   */
  port: number;
  /**
   * each peer it has seen (host:port) and where it came
   * from as libtorrent records it (`pex`, `tracker`, …, `incoming`); a peer it dialled is named
   * by its listening address
   */
  peers: Map<string, string[]>;
  /**
   * wait
   * until cond() holds (fails if the peer exits first, or after ms)
   */
  waitFor: (cond: () => boolean, what: string, ms: number) => Promise<void>;
  /**
   * it has every piece
   */
  done: () => boolean;
  stop: () => Promise<void>;
};
export type MeasuredRun = {
  /**
   * wall time from spawn to exit
   */
  wallMs: number;
  /**
   * user + system CPU time of the program (and its waited-for children)
   */
  cpuMs: number;
  /**
   * peak resident set size in KiB
   */
  peakRssKb: number;
  /**
   * exit code
   */
  code: number | null;
  signal: string | null;
  /**
   * up to MAX_STDOUT_BYTES of it
   */
  stdout: string;
  stderrTail: string;
  /**
   * samples of `sample()` (ms since spawn)
   */
  series: {
    t: number;
    bytes: number;
  }[];
};
export type DownloadOpts = {
  torrent: string;
  outDir: string;
  timeoutMs?: number;
};
export type TdlRun = MeasuredRun & {
  events: Record<string, unknown>[];
};
export type TdlPeer = {
  /**
   * the port tdl listens on (from its `started` event)
   */
  port: number;
  name: string;
  /**
   * its --json events so far
   */
  events: Record<string, unknown>[];
  /**
   *   the first event of that name (already seen or still to come); throws when tdl exits first
   */
  waitForEvent: (event: string, timeoutMs?: number) => Promise<Record<string, unknown>>;
  exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>;
  /**
   *   SIGINT (tdl leaves cleanly, telling its trackers), SIGKILL after STOP_GRACE_MS; its exit
   */
  stop: () => Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  } | null>;
};
export type HangingPeers = {
  ports: number[];
  stop: () => Promise<void>;
};
export type Tracked = {
  name: string;
  child: import('node:child_process').ChildProcess;
  /**
   * the process group id (the child is its group leader)
   */
  pid: number;
  stderrTail: () => string;
  stdoutTail: () => string;
  exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>;
  exit: {
    code: number | null;
    signal: NodeJS.Signals | null;
  } | null;
  /**
   * the signal that asks it to leave gracefully
   */
  stopSignal: NodeJS.Signals;
  /**
   * how long stopAll lets it leave before SIGKILL (0: at once)
   */
  stopGraceMs: number;
};
