import {
  accessSync,
  constants,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DiskError, stdoutWriteError, UsageError } from '../errors.js';
import { checkPieceLength, createTorrent, parseSize } from '../metainfo/create.js';
import { escapeControl, formatBytes, formatRate, terminalColumns } from './format.js';
import type { CliIO } from './program.js';
import { CLIENT_NAME } from '../version.js';

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
  // With `-o -` the torrent owns stdout; everything else goes to stderr.
  const report = toStdout ? io.stderr : io.stdout;
  const tty = Boolean(io.stderr.isTTY) && !opts.quiet;
  const pieceLength =
    opts.pieceLength.toLowerCase() === 'auto'
      ? 'auto'
      : checkPieceLength(parseSize(opts.pieceLength));
  const trackers = opts.tracker.map((t) =>
    t
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== ''),
  );
  if (toStdout && (io.stdout as { isTTY?: boolean }).isTTY) {
    throw new UsageError(
      '-o - would write a binary .torrent to the terminal: pipe or redirect stdout',
    );
  }
  const target = toStdout ? undefined : outputTarget(opts.output);
  const outPath = target?.path;

  const started = performance.now();
  let lastDraw = 0;
  const bar = (done: number, total: number): string => {
    const width = Math.max(10, Math.min(40, terminalColumns(io.stderr) - 50));
    const frac = total > 0 ? done / total : 1;
    const fill = Math.round(frac * width);
    const secs = (performance.now() - started) / 1000;
    return (
      `hashing [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
      `${formatBytes(done)} / ${formatBytes(total)}  ${formatRate(secs > 0 ? done / secs : 0)}`
    );
  };

  const made = await createTorrent(input, {
    trackers,
    webSeeds: opts.webSeed,
    pieceLength,
    private: Boolean(opts.private),
    comment: opts.comment,
    source: opts.source,
    createdBy: opts.createdBy ?? CLIENT_NAME,
    creationDate: opts.date ? Math.floor(Date.now() / 1000) : undefined,
    exclude: outPath,
    signal: io.signal,
    onSkip: (rel, reason) => {
      if (tty) io.stderr.write('\r\x1b[2K');
      io.stderr.write(`tdl: warning: skipped ${escapeControl(rel)}: ${reason}\n`);
    },
    onProgress: (done, total) => {
      if (!tty) return;
      const now = performance.now();
      if (now - lastDraw < REDRAW_MS && done < total) return;
      lastDraw = now;
      io.stderr.write(`\r\x1b[2K${bar(done, total)}`);
    },
  });
  if (tty) io.stderr.write('\r\x1b[2K');

  if (target === undefined) {
    // Bytes, not text: the streams tdl runs with (process.stdout) take a Buffer. Waited for, so
    // a failed write (`> /dev/full`) is this run's failure, not a success.
    const out = io.stdout as unknown as {
      write(b: Uint8Array, cb: (err?: Error | null) => void): unknown;
    };
    await new Promise<void>((resolve, reject) => {
      out.write(made.torrent, (err) => (err ? reject(stdoutWriteError(err)) : resolve()));
    });
  } else if (!target.regular) {
    // A pipe or a device (`-o >(...)`, `-o /dev/stdout`): written to, as a shell's `>` would,
    // never replaced by a file.
    try {
      await writeFile(target.path, made.torrent, { signal: io.signal });
    } catch (e) {
      if (io.signal?.aborted) throw io.signal.reason;
      throw writeError(opts.output, e);
    }
  } else {
    // Write beside the target, then rename: a failed run never leaves half a .torrent.
    const tmp = `${target.path}.tdl-tmp-${process.pid}`;
    try {
      writeFileSync(tmp, made.torrent);
      renameSync(tmp, target.path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw writeError(opts.output, e);
    }
  }
  if (!opts.quiet) {
    report.write(
      `${made.multiFile ? 'files' : 'file'}:     ${made.fileCount} (${formatBytes(made.length)}), ` +
        `${made.pieceCount} piece${made.pieceCount === 1 ? '' : 's'} of ${formatBytes(made.pieceLength)}\n` +
        `info hash: ${made.infoHashHex}\n` +
        `magnet:    ${made.magnet}\n`,
    );
  }
  return 0;
}

function writeError(shown: string, e: unknown): DiskError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new DiskError(`cannot write ${shown}: ${code}`, { cause: e });
}

/**
 * Where `-o` writes, checked before any hashing: an existing regular file (through any links)
 * is replaced at its real path; a pipe or a device is written to; a folder is refused, and so
 * is a path whose folder is missing (exit 2) or not writable (exit 6).
 */
function outputTarget(output: string): { path: string; regular: boolean } {
  const abs = path.resolve(output);
  let st;
  try {
    st = statSync(abs);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) throw new UsageError(`-o ${output} is a folder: name the .torrent file`);
  if (st !== undefined && !st.isFile()) return { path: abs, regular: false };
  const real = st === undefined ? abs : realpathSync.native(abs);
  const dir = path.dirname(real);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new UsageError(`cannot write ${output}: no folder ${dir}`);
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw writeError(output, e);
  }
  return { path: real, regular: true };
}
