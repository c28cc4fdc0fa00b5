import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DiskError, UsageError } from '../errors.js';
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
    opts.pieceLength === 'auto' ? 'auto' : checkPieceLength(parseSize(opts.pieceLength));
  const trackers = opts.tracker.map((t) =>
    t
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== ''),
  );
  const outPath = toStdout ? undefined : path.resolve(opts.output);

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

  if (outPath === undefined) {
    // Bytes, not text: the streams tdl runs with (process.stdout) take a Buffer.
    (io.stdout as unknown as { write(b: Uint8Array): unknown }).write(made.torrent);
  } else {
    // Write beside the target, then rename: a failed run never leaves half a .torrent.
    const tmp = `${outPath}.tdl-tmp-${process.pid}`;
    try {
      writeFileSync(tmp, made.torrent);
      renameSync(tmp, outPath);
    } catch (e) {
      rmSync(tmp, { force: true });
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      if (code === 'ENOENT') throw new UsageError(`cannot write ${opts.output}: ${code}`);
      throw new DiskError(`cannot write ${opts.output}: ${code}`, { cause: e });
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
