import { UsageError } from '../errors.js';
import { download } from '../swarm/client.js';
import type { Download } from '../swarm/download.js';
import type { PeerAddress } from '../tracker/types.js';
import { escapeControl, redactUrls } from './format.js';
import type { CliIO, DownloadCliOptions } from './program.js';
import { checkLine, progressLine, summaryLine } from './progress.js';
import { loadTorrent } from './torrent-file.js';

const REDRAW_MS = 200;
const JSON_PROGRESS_MS = 250;

/** Parse `host:port`, `[v6]:port`. */
export function parsePeer(s: string): PeerAddress {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--peer ${s}: expected HOST:PORT with a port from 1 to 65535`);
  }
  return { host: m[1]!, port };
}

export async function runDownload(
  file: string,
  opts: DownloadCliOptions,
  io: CliIO,
): Promise<number> {
  const peers = opts.peer.map(parsePeer);
  const meta = await loadTorrent(file, { stdin: io.stdin, signal: io.signal });
  const json = Boolean(opts.json);
  const tty = Boolean(io.stderr.isTTY) && !opts.quiet && !json;
  const emit = (o: Record<string, unknown>) => io.stdout.write(`${JSON.stringify(o)}\n`);
  const warn = (message: string) => {
    // Passkeys stay out of --json too (they end up in logs); DEBUG logs keep them whole.
    if (json) emit({ event: 'warning', message: redactUrls(message) });
    if (!opts.quiet && !json)
      io.stderr.write(
        `${tty ? '\r\x1b[2K' : ''}tdl: warning: ${escapeControl(redactUrls(message))}\n`,
      );
  };

  let timer: NodeJS.Timeout | null = null;
  let dl: Download | null = null;
  const redraw = () => {
    if (!dl) return;
    const s = dl.stats();
    if (tty) io.stderr.write(`\r\x1b[2K${progressLine(s, meta.name, io.stderr.columns ?? 80)}`);
    if (json) {
      emit({
        event: 'progress',
        downloaded: s.completed,
        total: s.total,
        percent: s.total > 0 ? Math.round((s.completed / s.total) * 1000) / 10 : 100,
        rate: Math.round(s.rate),
        peers: s.connected,
        activePeers: s.active,
        piecesDone: s.piecesDone,
        time: s.elapsedMs,
      });
    }
  };

  try {
    const result = await download({
      meta,
      output: opts.output,
      peers,
      maxPeers: opts.maxPeers,
      peerTimeoutMs: opts.peerTimeout * 1000,
      stallTimeoutMs: opts.timeout * 1000,
      signal: io.signal,
      onCheck: (checked, total, valid) => {
        if (tty) {
          io.stderr.write(
            `\r\x1b[2K${checkLine(checked, total, valid, meta.name, io.stderr.columns ?? 80)}`,
          );
        }
        if (json) emit({ event: 'checking', checked, total, valid });
      },
      onStart: (d, plan) => {
        dl = d;
        d.on('warning', warn);
        if (json) {
          const s = d.stats();
          emit({
            event: 'started',
            name: meta.name,
            infoHash: meta.infoHashHex,
            size: meta.length,
            pieces: meta.pieceCount,
            pieceLength: meta.pieceLength,
            files: meta.files.length,
            output: plan.root,
            present: s.initial,
          });
          d.on('peer', (p) => emit({ event: 'peer', ...p }));
        }
        if (tty || json) {
          timer = setInterval(redraw, tty ? REDRAW_MS : JSON_PROGRESS_MS);
          timer.unref();
        }
      },
    });
    if (timer) clearInterval(timer);
    redraw();
    const s = result.stats;
    if (json) {
      emit({
        event: 'done',
        size: s.total,
        elapsedMs: s.elapsedMs,
        averageRate: s.elapsedMs > 0 ? Math.round(s.downloaded / (s.elapsedMs / 1000)) : 0,
        downloaded: s.downloaded,
        present: s.initial,
        wasted: s.wasted,
        replaced: s.piecesReplaced,
        peersUsed: s.peersUsed,
        checkMs: Math.round(result.check.ms),
        output: result.plan.root,
      });
    }
    if (tty) io.stderr.write(`\r\x1b[2K${summaryLine(s, result.plan.root)}\n`);
    return 0;
  } catch (e) {
    if (timer) clearInterval(timer);
    if (tty) io.stderr.write('\r\x1b[2K');
    throw e;
  }
}
