import { fstatSync, type Stats } from 'node:fs';
import { readlink, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Dht } from '../dht/dht.js';
import type { EncryptionMode } from '../peer/connection.js';
import { EventsIntoDataError, UsageError } from '../errors.js';
import { isMagnet, parseMagnet } from '../metainfo/magnet.js';
import { download, HAND_OVER_MAX_MS } from '../swarm/client.js';
import { Listener } from '../swarm/listener.js';
import type { Download } from '../swarm/download.js';
import type { DownloadStats } from '../swarm/download-api.js';
import { EVENTS_BACKLOG_BYTES, jsonLine, Pacer } from './events.js';
import { escapeControl, formatBytes, percentDown, printable, terminalColumns } from './format.js';
import type { CliIO, DownloadCliOptions } from './program.js';
import { checkLine, progressLine, seedLine, seedSummaryLine, summaryLine } from './progress.js';
import { parseBootstrap, parsePeer } from './peer-arg.js';
import { DHT_DEFAULT_PORT, dhtUnusable, startDhtNode } from './dht-node.js';
import { fdOf } from './output-file.js';
import { openTorrent, type OpenedTorrent } from './source.js';
import {
  checkSelectionSyntax,
  resolveSelection,
  selectedBytes,
  selectionFromIndexes,
} from '../storage/selection.js';
import { fileList, isPaddingFile, paddingFileCount, type Metainfo } from '../metainfo/torrent.js';
import {
  makeWorkDir,
  removeMadeParents,
  removeStreamed,
  streamWorkDir,
  type ByteSink,
} from '../storage/stream-out.js';
import { partPathOf } from '../storage/names.js';
import {
  checkOutputEarly,
  outputRoot,
  outputWrites,
  outputWritesFile,
  planFilePath,
} from '../storage/output.js';
import { FdSink } from '../storage/fd-sink.js';
import { outgoingAddress } from '../tracker/local-addresses.js';

export { parsePeer };

const REDRAW_MS = 200;
const JSON_PROGRESS_MS = 250;
/**
 * How long `-o -` gives the reader, once the run has ended some other way than done, to take
 * what tdl already wrote into the pipe; then the rest is dropped and tdl exits (README: the
 * same 2 s as the last lines to stdout).
 */
const STDOUT_SETTLE_MS = 2_000;

/** The listening and upload options shared by `download` and `seed`. */
export interface PeerCliOptions {
  port?: number;
  bind?: string;
  /** commander's `--no-listen`: false when given. */
  listen: boolean;
  uploadSlots: number;
  maxUploadRate?: number;
  maxDownloadRate?: number;
  seedTime?: number;
  seedRatio?: number;
  /** commander's `--no-dht`: false when given. */
  dht: boolean;
  dhtBootstrap: string[];
  /** commander's `--no-web-seeds`. */
  webSeeds: boolean;
  encryption: EncryptionMode;
}

export async function runDownload(
  file: string,
  opts: DownloadCliOptions & PeerCliOptions & { seed?: boolean; saveTorrent?: string },
  io: CliIO,
  mode: 'download' | 'seed' = 'download',
): Promise<number> {
  // A limit of 0 is reached at once: "as if not seeding", with no seeding line or event (a
  // download does not seed at all; tdl seed checks the data and stops).
  const seedsNot = opts.seedTime === 0 || opts.seedRatio === 0;
  // A seeding limit asks for seeding: --seed-time or --seed-ratio alone imply --seed.
  if (mode === 'download' && (opts.seedTime !== undefined || opts.seedRatio !== undefined)) {
    opts = { ...opts, seed: !seedsNot };
  }
  // `-o -`: the file's bytes go to stdout, and nothing else does (--json events go to stderr).
  const streaming = opts.output === '-';
  const sink = streaming ? checkStreamArgs(opts, io, mode) : null;
  if (opts.resume === false && !streaming) {
    throw new UsageError(
      '--no-resume applies to -o - only: a download to a file always keeps its resume file',
    );
  }
  // What can be checked without the torrent's file list is checked before any wait (a magnet
  // link's metadata may take --timeout to come): the selection options' syntax, -o …
  checkSelectionSyntax(opts);
  if (!streaming && opts.output !== undefined && isMagnet(file)) {
    await checkOutputEarly(opts.output);
  }
  // … and --save-torrent against -o as given; again once the metadata tells where the data goes.
  if (opts.saveTorrent !== undefined && !streaming) {
    await checkSaveTorrent(opts.saveTorrent, opts.output ?? '.');
  }
  const cliPeers = opts.peer.map((p) => parsePeer(p));
  const bootstrap = parseBootstrap(opts.dhtBootstrap);
  const json = Boolean(opts.json);
  const tty = Boolean(io.stderr.isTTY) && !opts.quiet && !json;
  const events = streaming ? io.stderr : io.stdout;
  const emit = (o: Record<string, unknown>) => {
    // A reader that falls behind misses `progress` events (snapshots, the next one says more),
    // never another: what waits for it in memory stays bounded on a long run.
    if (o['event'] === 'progress' && (events.writableLength ?? 0) > EVENTS_BACKLOG_BYTES) return;
    events.write(jsonLine(o));
  };
  const warn = (message: string) => {
    // Passkeys stay out of --json too (they end up in logs); DEBUG logs keep them whole.
    const text = printable(message);
    if (json) emit({ event: 'warning', message: text });
    else if (!opts.quiet) io.stderr.write(`${tty ? '\r\x1b[2K' : ''}tdl: warning: ${text}\n`);
  };
  // Said, not silently dropped: the option asks for what --no-dht turns off.
  if (opts.dht === false && opts.dhtBootstrap.length > 0) {
    warn('--dht-bootstrap is not used with --no-dht');
  }
  const magnet = isMagnet(file);
  let wantDht = opts.dht !== false && (magnet || cliPeers.length === 0);
  // Said now, and no node is started: the download then knows at once that no DHT will come
  // (a .torrent whose trackers are all out of reach exits 4 at once, as with --no-dht).
  const noDht = wantDht ? dhtUnusable(opts.bind) : null;
  if (noDht !== null) {
    warn(noDht);
    wantDht = false;
  }
  let dht: Dht | null = null;
  /** The DHT of a .torrent download, while it starts (see below); null: none could start. */
  let dhtStarting: Promise<Dht | null> | null = null;
  const startDht = async () => {
    // The DHT's UDP port is --port's when given (a taken one falls back to any free port).
    const port = opts.port ?? DHT_DEFAULT_PORT;
    dht = await startDhtNode({ port, bind: opts.bind, bootstrap, warn });
    return dht;
  };
  // The working copy of a stream: a magnet's metadata is kept there too.
  let workDir =
    streaming && magnet ? streamWorkDir(parseMagnet(file).infoHash.toString('hex')) : '';
  const listen = opts.listen === false ? false : { port: opts.port, bind: opts.bind };
  // Outgoing connections leave from the --bind address too. Without a listener to fail on an
  // address this machine does not have, it is tried now: a usage error, not "no peers" later.
  const localAddress = outgoingAddress(opts.bind);
  if (listen === false && localAddress !== undefined) await Listener.checkAddress(localAddress);
  let opened: OpenedTorrent | null = null;
  /**
   * A stream's file, once this run holds the output's lock (the download started): its working
   * copy is what `--no-resume` removes. Others' (streams of other files of the torrent, or of
   * this one by a run that holds the lock) are never this run's to remove.
   */
  let ownCopy: { file: string; working: string } | null = null;
  /** The first folder making the working folder created (see removeMadeParents). */
  let madeFrom: string | undefined;
  /** The start-up check's progress, drawn or sent. */
  const checkPace = new Pacer(tty ? REDRAW_MS : JSON_PROGRESS_MS);
  try {
    if (workDir) madeFrom = await makeWorkDir(workDir);
    if (wantDht && magnet) await startDht();
    opened = await openTorrent(
      file,
      {
        peers: cliPeers,
        output: streaming ? workDir || undefined : opts.output,
        timeoutMs: opts.timeout * 1000,
        handshakeMs: opts.peerTimeout * 1000,
        saveTorrent: opts.saveTorrent,
        // Once the metadata says where the data goes: not onto it, nor onto tdl's side files.
        checkSave: (meta) =>
          checkSaveTorrent(
            opts.saveTorrent!,
            streaming ? '-' : (opts.output ?? '.'),
            meta,
            streaming ? streamWorkDir(meta.infoHashHex) : opts.output,
          ),
        tty,
        emit: json ? emit : undefined,
        warn,
        dht,
        encryption: opts.encryption,
        localAddress,
        // The metadata phase listens and keeps its peers for the download.
        handoff: { listen },
      },
      io,
    );
    // Private torrents (BEP 27) never touch the DHT: it starts once the torrent says it may,
    // while the download sets up its output and asks the trackers (the download awaits it).
    // A magnet link's DHT ran for the metadata; a private torrent has no more use for it (the
    // download asks its trackers alone), so its node stops now rather than at the exit.
    if (magnet && opened.meta.private && dht) {
      const node = dht as Dht;
      dht = null;
      await node.stop().catch(() => {});
    }
    if (wantDht && !magnet && !opened.meta.private) {
      dhtStarting = startDht();
      dhtStarting.catch(() => {}); // a failure is the download's, when it awaits it
    } else if (!magnet && opts.dht !== false && noDht === null && opts.dhtBootstrap.length > 0) {
      // Said, as with --no-dht: the option asks for a DHT this run does not start (a DHT that
      // cannot run here was said above, with its reason).
      warn(
        opened.meta.private
          ? '--dht-bootstrap is not used: the torrent is private (no DHT)'
          : '--dht-bootstrap is not used: with --peer, peers come from --peer only',
      );
    }
    const meta = opened.meta;
    if (json && !streaming) await checkEventsNotIntoOutput(io, meta, opts.output, mode);
    // The file list is walked entry by entry, never made whole (see fileList).
    const files = fileList(meta);
    let selected = resolveSelection(
      files,
      meta.name,
      meta.multiFile,
      { select: opts.select, include: opts.include, exclude: opts.exclude },
      warn,
    );
    // A magnet's `so` (BEP 53) selects when no option does.
    if (!selected && opened.selectOnly) {
      const fromLink = selectionFromIndexes(files, opened.selectOnly);
      selected = fromLink.selected;
      if (fromLink.beyond.length > 0) {
        warn(
          `magnet so=: ${fromLink.beyond.length === 1 ? 'index' : 'indexes'} ` +
            `${fromLink.beyond.slice(0, 10).join(', ')}${fromLink.beyond.length > 10 ? ', …' : ''} ` +
            `beyond the torrent's ${files.length} files (counted from 0): ignored`,
        );
      }
    }
    const realFiles = files.length - paddingFileCount(meta);
    // The torrent's data, BEP 47 padding left out (as `tdl info` gives it).
    const dataSize = realFiles === files.length ? meta.length : selectedBytes(files, null);
    const selection = selected
      ? {
          selectedFiles: selected.reduce((n, v) => n + v, 0),
          selectedSize: selectedBytes(files, selected),
        }
      : null;
    // Warnings about the .torrent itself (ignored trailing bytes, remapped names, bad seeds).
    for (const w of meta.warnings) warn(w);
    let stream: { fileIndex: number; out: ByteSink } | undefined;
    if (sink) {
      const picked: number[] = [];
      for (let i = 0; i < files.length; i++) {
        if (!isPaddingFile(meta, i) && (!selected || selected[i])) picked.push(i);
      }
      if (picked.length !== 1) {
        throw new UsageError(
          selected
            ? `-o - needs a single file: the selection has ${picked.length} of ${realFiles}; pick one with --select`
            : `-o - needs a single file: this torrent has ${realFiles}; pick one with --select`,
        );
      }
      stream = { fileIndex: picked[0]!, out: sink };
      workDir = streamWorkDir(meta.infoHashHex);
      madeFrom = await makeWorkDir(workDir);
    }
    const output = streaming ? workDir : opts.output;

    let timer: NodeJS.Timeout | null = null;
    let dl: Download | null = null;
    let seeding = false;
    /** When seeding began (ms into the run): the download's time ends there, the seeding's starts. */
    let seedingFromMs = 0;
    /** What went out while downloading (`--seed`): the seeded line gives what seeding sent. */
    let uploadedBeforeSeeding = 0;
    let listenPort = 0;
    /**
     * The download's figures have ended (see onFiguresEnd): no sample more until the final one,
     * which must come last in time (or seeding begins, whose samples run on from there).
     */
    let figuresEnded = false;
    /** When the download's figures ended (ms into the run): its time, when a hand-over follows. */
    let figuresEndMs: number | undefined;
    /** `final`: the run's own last figures, so that the last `progress` agrees with `done`. */
    const redraw = (final?: DownloadStats) => {
      if (!dl) return;
      const s = final ?? dl.stats();
      const cols = terminalColumns(io.stderr);
      if (tty) {
        const line = seeding ? seedLine(s, meta.name, cols) : progressLine(s, meta.name, cols);
        io.stderr.write(`\r\x1b[2K${line}`);
      }
      if (json) {
        emit({
          event: 'progress',
          downloaded: s.completed,
          total: s.total,
          percent: percentDown(s.completed, s.total),
          rate: Math.round(s.rate),
          uploaded: s.uploaded,
          uploadRate: Math.round(s.uploadRate),
          peers: s.connected,
          activePeers: s.active,
          servedPeers: s.served,
          piecesDone: s.piecesDone,
          time: s.elapsedMs,
        });
      }
    };
    const seedLimits =
      mode === 'seed' || opts.seed
        ? {
            timeMs: opts.seedTime !== undefined ? opts.seedTime * 60_000 : undefined,
            ratio: opts.seedRatio,
          }
        : undefined;

    try {
      const result = await download({
        meta,
        output,
        stream,
        peers: cliPeers,
        magnetPeers: opened.peers,
        selected,
        trackersToo: opened.magnet,
        dht: dhtStarting ?? dht,
        webSeeds: opts.webSeeds,
        torrentBytes: opened.torrentBytes,
        handoff: opened.handoff,
        maxPeers: opts.maxPeers,
        peerTimeoutMs: opts.peerTimeout * 1000,
        stallTimeoutMs: opts.timeout * 1000,
        signal: io.signal,
        listen,
        uploadSlots: opts.uploadSlots,
        maxUploadRate: opts.maxUploadRate,
        maxDownloadRate: opts.maxDownloadRate,
        encryption: opts.encryption,
        localAddress,
        seed: seedLimits,
        seedOnly: mode === 'seed',
        onFiguresEnd: (d, atEnd) => {
          figuresEnded = true;
          figuresEndMs = atEnd.elapsedMs;
          // A terminal shows the end at once, while the files get their names.
          if (tty && mode === 'download') {
            const line = progressLine(d.stats(), meta.name, terminalColumns(io.stderr));
            io.stderr.write(`\r\x1b[2K${line}`);
          }
        },
        onHandOver: (pieces) => {
          const s = dl?.stats();
          if (json) emit({ event: 'handover', pieces, time: s?.elapsedMs ?? 0 });
          if (!json && !opts.quiet) {
            // Said once, and kept (the wait it explains comes before the summary).
            const what = pieces === 1 ? '1 piece' : `${pieces} pieces`;
            const line = `tdl: handing over ${what} no connected peer has (at most ${HAND_OVER_MAX_MS / 1000} s; Ctrl-C to stop)`;
            io.stderr.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
          }
        },
        onSeeding: (d, atComplete) => {
          seeding = true;
          const s = d.stats();
          seedingFromMs = s.elapsedMs;
          uploadedBeforeSeeding = atComplete.uploaded;
          if (seedsNot) return;
          if (json) emit({ event: 'seeding', uploaded: s.uploaded, time: s.elapsedMs });
          if (!json && !opts.quiet) {
            // Said once, on a terminal too: the port is what another peer needs to reach us.
            const where = listenPort > 0 ? `on port ${listenPort}` : 'accepting no connection';
            const line = `tdl: seeding ${escapeControl(meta.name)} ${where} (Ctrl-C to stop)`;
            io.stderr.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
          }
        },
        onCheck: (checked, total, valid) => {
          // A check of scattered pieces (those written since the last checkpoint, after a
          // crash) reports each piece: drawn and sent at the progress line's pace, and at its end.
          if (!checkPace.pass(checked >= total)) return;
          if (tty) {
            io.stderr.write(
              `\r\x1b[2K${checkLine(checked, total, valid, meta.name, terminalColumns(io.stderr))}`,
            );
          }
          if (json) emit({ event: 'checking', checked, total, valid });
        },
        onStart: (d, plan, info) => {
          dl = d;
          listenPort = info.port;
          if (stream) {
            const i = stream.fileIndex;
            ownCopy = { file: planFilePath(plan, i), working: partPathOf(plan, i) };
          }
          d.on('warning', warn);
          if (json) {
            const s = d.stats();
            emit({
              event: 'started',
              mode,
              port: info.port,
              name: meta.name,
              infoHash: meta.infoHashHex,
              size: dataSize,
              pieces: meta.pieceCount,
              pieceLength: meta.pieceLength,
              files: files.length,
              output: plan.root,
              present: s.initial,
              ...(selection ?? {}),
            });
            d.on('peer', (p) => emit({ event: 'peer', ...p }));
          }
          if (tty || json) {
            timer = setInterval(
              () => {
                if (!figuresEnded || seeding) redraw();
              },
              tty ? REDRAW_MS : JSON_PROGRESS_MS,
            );
            timer.unref();
          }
        },
      });
      if (timer) clearInterval(timer);
      // The reader has every byte: the working copy of that file goes (not other files').
      if (stream) {
        const { plan } = result;
        const i = stream.fileIndex;
        await removeStreamed(workDir, planFilePath(plan, i), partPathOf(plan, i));
      }
      const where = streaming ? '-' : result.plan.root;
      redraw(result.stats);
      const s = result.stats;
      // The download's own time ends where seeding began, or a hand-over (see onFiguresEnd).
      const downloadMs = seeding ? seedingFromMs : (figuresEndMs ?? s.elapsedMs);
      if (json) {
        emit({
          event: 'done',
          size: s.total,
          elapsedMs: s.elapsedMs,
          averageRate: downloadMs > 0 ? Math.round(s.downloaded / (downloadMs / 1000)) : 0,
          ...(seeding ? { seedingMs: s.elapsedMs - seedingFromMs } : {}),
          downloaded: s.downloaded,
          present: s.initial,
          wasted: s.wasted,
          wastedBy: s.wastedBy,
          uploaded: s.uploaded,
          // Over the whole run, like averageRate: the rate of the last seconds says nothing here.
          uploadRate: s.elapsedMs > 0 ? Math.round(s.uploaded / (s.elapsedMs / 1000)) : 0,
          replaced: s.piecesReplaced,
          peersUsed: s.peersUsed,
          fromWebSeeds: s.fromWebSeeds,
          checkMs: Math.round(result.check.ms),
          output: where,
          ...(selection ?? {}),
        });
      }
      if (tty) {
        const sel = selection
          ? `, ${selection.selectedFiles} of ${realFiles} files selected (${formatBytes(selection.selectedSize)})`
          : '';
        // The download's time and average end where seeding began; the seeding's time starts there.
        const seeded = { ...s, elapsedMs: s.elapsedMs - seedingFromMs };
        const line =
          mode === 'seed'
            ? seedSummaryLine(seeded, result.plan.root)
            : summaryLine(
                // After --seed, the download's upload too: the seeded line gives the rest.
                {
                  ...s,
                  elapsedMs: downloadMs,
                  uploaded: seeding ? uploadedBeforeSeeding : s.uploaded,
                },
                streaming ? 'stdout' : where,
              );
        io.stderr.write(`\r\x1b[2K${line}${sel}\n`);
        if (mode === 'download' && seeding) {
          const line = seedSummaryLine(seeded, result.plan.root, uploadedBeforeSeeding);
          io.stderr.write(`${line}\n`);
        }
      }
      return 0;
    } catch (e) {
      if (timer) clearInterval(timer);
      if (tty) io.stderr.write('\r\x1b[2K');
      // The last `progress` gives the run's figures at its end, a failed run's too (a disk that
      // filled within the first quarter second sent none before its `error`).
      if (json) redraw();
      throw e;
    }
  } finally {
    // Kept connections the download did not take (it failed to start, or never ran).
    await opened?.handoff?.close();
    // A DHT still starting is stopped once it has (it would bind after a stop).
    await dhtStarting?.catch(() => {});
    await (dht as Dht | null)?.stop().catch(() => {});
    // A write to a pipe nobody reads would keep the process from exiting.
    if (sink instanceof FdSink) await sink.settle(STDOUT_SETTLE_MS);
    // --no-resume: nothing of this stream is kept for a later run, however it ended (the side
    // files go too once no other file's working copy needs them).
    const own = ownCopy as { file: string; working: string } | null; // set in a callback
    if (streaming && opts.resume === false && workDir && own) {
      await removeStreamed(workDir, own.file, own.working);
    }
    // A working folder made for nothing (no metadata came, a refused selection): not left.
    else if (workDir) await rmdir(workDir).catch(() => {});
    // Nor the cache folders made for it, once it is gone (a folder still holding it stays).
    if (workDir) await removeMadeParents(workDir, madeFrom);
  }
}

/**
 * `--save-torrent` may not name what the download writes (storage/output.ts, outputWrites): the
 * data would replace the saved torrent, or the run remove it with its resume file. Without the
 * metadata, `-o` as given is the root; with it, the root as the download will find it (`-o` an
 * existing folder puts it inside), and the torrent's own files count too. Refused with exit 2.
 */
async function checkSaveTorrent(
  save: string,
  shown: string,
  meta?: Metainfo,
  output?: string,
): Promise<void> {
  const t = meta && {
    name: meta.name,
    multiFile: meta.multiFile,
    infoHash: meta.infoHash,
    files: fileList(meta),
  };
  const root = t ? (await outputRoot(t, output)).root : path.resolve(shown);
  if (outputWrites(root, path.resolve(save), t)) {
    throw new UsageError(
      `--save-torrent ${save}: the download (-o ${shown}) writes there; name another file`,
    );
  }
}

/**
 * `--json` with stdout redirected to a file the run writes (`-o f.bin > f.bin`): the events
 * would be written into the data, and the run end with exit 0. Refused (exit 2), whichever name
 * stdout has for it: through a link to a folder on the way, or another hard link. Linux names
 * stdout's file in /proc; elsewhere nothing is checked.
 */
async function checkEventsNotIntoOutput(
  io: CliIO,
  meta: Metainfo,
  output: string | undefined,
  mode: 'download' | 'seed',
): Promise<void> {
  const fd = fdOf(io.stdout);
  if (fd === undefined) return;
  let where: string;
  let st: Stats;
  try {
    st = fstatSync(fd);
    if (!st.isFile()) return;
    where = await readlink(`/proc/self/fd/${fd}`);
  } catch {
    return;
  }
  const t = {
    name: meta.name,
    multiFile: meta.multiFile,
    infoHash: meta.infoHash,
    files: fileList(meta),
  };
  const { root } = await outputRoot(t, output);
  const hit = await outputWritesFile(root, t, where, st);
  if (hit !== null) {
    const also = hit === where ? '' : ` (the same file as ${hit})`;
    const who = mode === 'seed' ? 'the seed writes or serves' : 'the download writes';
    throw new EventsIntoDataError(
      `--json: stdout is ${where}${also}, which ${who}: the events would go into the data; ` +
        'redirect them to another file',
    );
  }
}

/**
 * `-o -` streams one file to stdout: refused (exit 2) for `seed`, with `--seed`, and onto a
 * terminal. Returns stdout as the byte sink.
 */
function checkStreamArgs(opts: { seed?: boolean }, io: CliIO, mode: 'download' | 'seed'): ByteSink {
  if (mode === 'seed') {
    throw new UsageError(
      '-o - streams a download to stdout; tdl seed needs -o to name where the data is on disk',
    );
  }
  if (opts.seed) {
    throw new UsageError(
      '--seed (or --seed-time, --seed-ratio) cannot be used with -o -: the streamed copy is removed once written; download with -o FILE to seed it',
    );
  }
  const out = io.stdout as unknown as Partial<ByteSink> & { isTTY?: boolean };
  if (out.isTTY) {
    throw new UsageError('-o - would write binary data to the terminal: pipe or redirect stdout');
  }
  if (typeof out.on !== 'function' || typeof out.off !== 'function') {
    throw new UsageError('-o - needs stdout to be a byte stream');
  }
  return fdSink(out as ByteSink & { fd?: unknown; _handle?: unknown }) ?? (out as ByteSink);
}

/**
 * stdout as a descriptor written from the thread pool (`FdSink`) when it is a pipe; null for
 * anything else, which is written as a stream (a file or /dev/null: Node writes those
 * synchronously, at once, which a pool thread would only delay; a socket). The pipe is made
 * blocking again (Node's pipe handle made it non-blocking), so a pool thread's `write()` waits
 * for the reader rather than failing with EAGAIN.
 */
function fdSink(out: ByteSink & { fd?: unknown; _handle?: unknown }): FdSink | null {
  const fd = out.fd;
  if (typeof fd !== 'number') return null;
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return null;
  }
  // stderr into the same pipe (`2>&1`): making the pipe blocking would make tdl's messages block
  // the main thread on a reader that does not read.
  if (st.isFIFO() && !samePipe(st, 2)) {
    const handle = out._handle as { setBlocking?: (on: boolean) => number } | null | undefined;
    handle?.setBlocking?.(true);
    return new FdSink(fd, { pipe: true, fallback: out });
  }
  return null;
}

/** Whether descriptor `fd` is the pipe `st` describes. */
function samePipe(st: { dev: number; ino: number }, fd: number): boolean {
  try {
    const other = fstatSync(fd);
    return other.dev === st.dev && other.ino === st.ino;
  } catch {
    return false;
  }
}
