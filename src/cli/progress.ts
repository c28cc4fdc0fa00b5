/** The live progress lines (stderr, TTY only) and the final summaries. */
import type { DownloadStats } from '../swarm/download.js';
import {
  escapeControl,
  formatBytes,
  formatDuration,
  formatRate,
  truncateToWidth,
} from './format.js';

export const BAR_WIDTH = 24;

function bar(frac: number): string {
  const filled = Math.max(0, Math.min(BAR_WIDTH, Math.floor(frac * BAR_WIDTH)));
  return '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
}

/** Cut to the terminal's width by columns, not UTF-16 units: wider lines wrap and break `\r`. */
function fit(line: string, columns: number): string {
  return truncateToWidth(line, Math.max(0, columns - 1));
}

function percent(part: number, total: number): string {
  return ((total > 0 ? part / total : 1) * 100).toFixed(1);
}

export function progressLine(s: DownloadStats, name: string, columns: number): string {
  const frac = s.total > 0 ? s.completed / s.total : 1;
  const pct = (frac * 100).toFixed(1).padStart(5);
  const eta = s.rate > 0 ? formatDuration(((s.total - s.completed) / s.rate) * 1000) : '--:--';
  // A resumed download says where it started from.
  const from = s.initial > 0 ? ` (from ${percent(s.initial, s.total)}%)` : '';
  const line =
    `[${bar(frac)}] ${pct}%${from}  ${formatBytes(s.completed)}/${formatBytes(s.total)}  ` +
    `${formatRate(s.rate)}  up ${formatRate(s.uploadRate)} ratio ${ratio(s)}  ` +
    `peers ${s.active}/${s.connected} serving ${s.served}  ETA ${eta}  ${escapeControl(name)}`;
  return fit(line, columns);
}

function ratio(s: DownloadStats): string {
  return (s.total > 0 ? s.uploaded / s.total : 0).toFixed(2);
}

/** The summary of a seeding run. */
export function seedSummaryLine(s: DownloadStats, where: string): string {
  return `seeded: ${formatBytes(s.uploaded)} uploaded (ratio ${ratio(s)}) in ${formatDuration(s.elapsedMs)} from ${escapeControl(where)}`;
}

/** The live line while seeding. */
export function seedLine(s: DownloadStats, name: string, columns: number): string {
  const line =
    `seeding  up ${formatRate(s.uploadRate)}  ${formatBytes(s.uploaded)} sent  ratio ${ratio(s)}  ` +
    `peers ${s.connected} serving ${s.served}  ${escapeControl(name)}`;
  return fit(line, columns);
}

export function summaryLine(s: DownloadStats, where: string): string {
  const secs = s.elapsedMs / 1000;
  const avg = secs > 0 ? s.downloaded / secs : 0;
  const parts = [
    `done: ${formatBytes(s.total)} in ${formatDuration(s.elapsedMs)} (${secs.toFixed(1)} s)`,
    `avg ${formatRate(avg)}`,
    `${s.peersUsed} peer${s.peersUsed === 1 ? '' : 's'} used`,
  ];
  if (s.initial > 0) {
    parts.push(`${formatBytes(s.initial)} already present (${percent(s.initial, s.total)}%)`);
  }
  if (s.piecesReplaced > 0) {
    parts.push(
      `${s.piecesReplaced} piece${s.piecesReplaced === 1 ? '' : 's'} of other data replaced`,
    );
  }
  if (s.wasted > 0) {
    const w = s.wastedBy;
    const why = [
      w.hashFailed > 0 ? `${formatBytes(w.hashFailed)} failed hash` : '',
      w.duplicate > 0 ? `${formatBytes(w.duplicate)} endgame duplicates` : '',
      w.afterCancel > 0 ? `${formatBytes(w.afterCancel)} after cancel` : '',
    ].filter(Boolean);
    parts.push(`${formatBytes(s.wasted)} wasted (${why.join(', ')})`);
  }
  if (s.uploaded > 0) parts.push(`${formatBytes(s.uploaded)} uploaded`);
  return `${parts.join(', ')} -> ${escapeControl(where)}`;
}

/** The line shown while existing data is re-hashed (`tdl verify`, or a download's start-up). */
export function checkLine(
  checked: number,
  total: number,
  valid: number,
  name: string,
  columns: number,
): string {
  const frac = total > 0 ? checked / total : 1;
  const line =
    `[${bar(frac)}] ${(frac * 100).toFixed(1).padStart(5)}%  checking ` +
    `${formatBytes(checked)}/${formatBytes(total)}  valid ${formatBytes(valid)}  ${escapeControl(name)}`;
  return fit(line, columns);
}
