import { fstatSync } from 'node:fs';
import { StdoutClosedError, stdoutWriteError, UsageError } from '../errors.js';
import { checkPieceLength, createTorrent, parseSize } from '../metainfo/create.js';
import {
  escapeControl,
  formatBytes,
  formatRate,
  terminalColumns,
  truncateToWidth,
} from './format.js';
import { giveUpOnStdout, takenOrStalled } from './stdout-wait.js';
import { fdOf, fileTarget, isDescriptor, isTerminal, writeTarget } from './output-file.js';
import type { CliIO } from './program.js';
import { CLIENT_NAME } from '../version.js';
import { monotonicMs } from '../clock.js';

export interface CreateCliOptions {
  output: string;
  tracker: string[];
  webSeed: string[];
  pieceLength: string;
  private?: boolean;
  comment?: string;
  source?: string;
  createdBy?: string;
  /** false with --no-date */
  date: boolean;
  quiet?: boolean;
}

const REDRAW_MS = 200;

export async function runCreate(input: string, opts: CreateCliOptions, io: CliIO): Promise<number> {
  const toStdout = opts.output === '-';
  const target = toStdout ? undefined : fileTarget(opts.output, '-o');
  const outPath = target?.path;
  // With `-o -` (or `-o /dev/stdout`, stdout by another name) the torrent owns stdout;
  // everything else goes to stderr.
  const ownsStdout =
    toStdout || (target !== undefined && isDescriptor(target, fdOf(io.stdout), true));
  const report = ownsStdout ? io.stderr : io.stdout;
  const tty = Boolean(io.stderr.isTTY) && !opts.quiet;
  const pieceLength =
    opts.pieceLength.toLowerCase() === 'auto'
      ? 'auto'
      : checkPieceLength(parseSize(opts.pieceLength));
  const trackers = opts.tracker.map((t) => {
    const tier = t
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '');
    // `--tracker " "` or `--tracker ,` names no tracker: never taken as "none" (as "" is not).
    if (tier.length === 0) throw new UsageError(`--tracker ${JSON.stringify(t)}: no URL in it`);
    // A comma inside one URL (a passkey, a query) cut it in two: say how to write one.
    const cut = tier.length > 1 ? tier.find((u) => !URL.canParse(u)) : undefined;
    if (cut !== undefined) {
      throw new UsageError(
        `--tracker ${JSON.stringify(t)}: ${JSON.stringify(cut)} is not a URL (a comma separates ` +
          'the trackers of one tier: write a comma inside a URL as %2C)',
      );
    }
    return tier;
  });
  // A URL named twice is kept once, where it first came (a client would only ask it twice),
  // and said so: nothing given is dropped without a word.
  const once = (urls: string[], seen: Set<string>, what: string): string[] =>
    urls.filter((u) => {
      if (!seen.has(u)) {
        seen.add(u);
        return true;
      }
      if (!opts.quiet) {
        io.stderr.write(`tdl: warning: ${what} ${escapeControl(u)} given twice: kept once\n`);
      }
      return false;
    });
  const seenTrackers = new Set<string>();
  const tiers = trackers
    .map((tier) => once(tier, seenTrackers, 'tracker'))
    .filter((tier) => tier.length > 0);
  // White space around a URL is dropped, as around each of --tracker's (inside, refused).
  const webSeeds = once(
    opts.webSeed.map((u) => u.trim()),
    new Set(),
    'web seed',
  );
  // `-o /dev/stdout` (or /dev/tty) onto a terminal: a device, not a pipe, so not ownsStdout.
  const terminal =
    target === undefined ? (io.stdout as { isTTY?: boolean }).isTTY === true : isTerminal(target);
  if (terminal) {
    throw new UsageError(
      `-o ${opts.output} would write a binary .torrent to the terminal: pipe or redirect stdout`,
    );
  }

  const started = monotonicMs();
  let lastDraw = 0;
  /** The hashing line, fitted to the terminal: a line that wraps cannot be redrawn in place. */
  const bar = (done: number, total: number): string => {
    const columns = terminalColumns(io.stderr);
    const frac = total > 0 ? done / total : 1;
    const secs = (monotonicMs() - started) / 1000;
    // Narrow, whole figures go from the end (the rate, then the sizes), never cut in their
    // middle: "357 MiB" for "357 MiB/s" would read as a size.
    const parts = [
      `${(frac * 100).toFixed(0).padStart(3)}%`,
      ` ${formatBytes(done)} / ${formatBytes(total)}`,
      `  ${formatRate(secs > 0 ? done / secs : 0)}`,
    ];
    while (parts.length > 1 && 'hashing '.length + parts.join('').length > columns - 1) parts.pop();
    const figures = parts.join('');
    // The bar gets what the figures leave of the line, at most 40 columns (none under 10).
    const width = Math.min(40, columns - 1 - 'hashing [] '.length - figures.length);
    const fill = Math.round(frac * width);
    const shown = width >= 10 ? `[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ` : '';
    return truncateToWidth(`hashing ${shown}${figures}`, columns - 1);
  };

  const made = await createTorrent(input, {
    trackers: tiers,
    webSeeds,
    pieceLength,
    private: Boolean(opts.private),
    comment: opts.comment,
    source: opts.source,
    createdBy: opts.createdBy ?? CLIENT_NAME,
    creationDate: opts.date ? Math.floor(Date.now() / 1000) : undefined,
    exclude: outPath,
    ...(toStdout ? stdoutFile(io) : {}),
    signal: io.signal,
    onSkip: (rel, reason) => {
      if (opts.quiet) return; // -q: nothing but errors
      if (tty) io.stderr.write('\r\x1b[2K');
      io.stderr.write(`tdl: warning: skipped ${escapeControl(`${rel}: ${reason}`)}\n`);
    },
    onProgress: (done, total) => {
      if (!tty) return;
      const now = monotonicMs();
      if (now - lastDraw < REDRAW_MS && done < total) return;
      lastDraw = now;
      io.stderr.write(`\r\x1b[2K${bar(done, total)}`);
    },
  }).finally(() => {
    // The line goes however hashing ends: an error's message must not follow its text.
    if (tty) io.stderr.write('\r\x1b[2K');
  });

  if (target === undefined) {
    // Bytes, not text: the streams tdl runs with (process.stdout) take a Buffer. Waited for, so
    // a failed write (`> /dev/full`) is this run's failure, not a success.
    const out = io.stdout as unknown as {
      write(b: Uint8Array, cb: (err?: Error | null) => void): unknown;
    };
    const written = new Promise<void>((resolve, reject) => {
      out.write(made.torrent, (err) => (err ? reject(stdoutWriteError(err)) : resolve()));
    });
    // A reader that takes nothing (`| sleep 60`) is not waited for beyond STDOUT_STALL_MS.
    if ((await takenOrStalled(io.stdout, written)) === 'stalled') {
      written.catch(() => {});
      return giveUpOnStdout(io);
    }
  } else {
    await writeTarget(target, made.torrent, io.signal).catch((e: unknown) => {
      // `-o /dev/stdout` into a pipe whose reader left: as for -o - (exit 141).
      const code = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      throw ownsStdout && code === 'EPIPE' ? new StdoutClosedError('EPIPE') : e;
    });
  }
  if (!opts.quiet) {
    report.write(
      `${(made.multiFile ? 'files:' : 'file:').padEnd(11)}${made.fileCount} (${formatBytes(made.length)}), ` +
        `${made.pieceCount} piece${made.pieceCount === 1 ? '' : 's'} of ${formatBytes(made.pieceLength)}\n` +
        `info hash: ${made.infoHashHex}\n` +
        `magnet:    ${made.magnet}\n`,
    );
  }
  return 0;
}

/** With `-o -`, the regular file stdout is redirected to, if it is one (see excludeFile). */
function stdoutFile(io: CliIO): { excludeFile?: { dev: number; ino: number } } {
  const fd = fdOf(io.stdout);
  if (fd === undefined) return {};
  try {
    const st = fstatSync(fd);
    return st.isFile() ? { excludeFile: { dev: st.dev, ino: st.ino } } : {};
  } catch {
    return {};
  }
}
