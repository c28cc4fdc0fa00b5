/** The live progress line (stderr, TTY only) and the final summary. */
import type { DownloadStats } from '../swarm/download.js';
import { escapeControl, formatBytes, formatDuration, formatRate } from './format.js';

export const BAR_WIDTH = 24;

export function progressLine(s: DownloadStats, name: string, columns: number): string {
  const frac = s.total > 0 ? s.completed / s.total : 1;
  const filled = Math.min(BAR_WIDTH, Math.floor(frac * BAR_WIDTH));
  const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
  const pct = (frac * 100).toFixed(1).padStart(5);
  const eta = s.rate > 0 ? formatDuration(((s.total - s.completed) / s.rate) * 1000) : '--:--';
  const line =
    `[${bar}] ${pct}%  ${formatBytes(s.completed)}/${formatBytes(s.total)}  ` +
    `${formatRate(s.rate)}  peers ${s.active}/${s.connected}  ETA ${eta}  ${escapeControl(name)}`;
  return line.length > columns - 1 ? line.slice(0, Math.max(0, columns - 1)) : line;
}

export function summaryLine(s: DownloadStats, where: string): string {
  const secs = s.elapsedMs / 1000;
  const avg = secs > 0 ? s.downloaded / secs : 0;
  const parts = [
    `done: ${formatBytes(s.total)} in ${formatDuration(s.elapsedMs)} (${secs.toFixed(1)} s)`,
    `avg ${formatRate(avg)}`,
    `${s.peersUsed} peer${s.peersUsed === 1 ? '' : 's'} used`,
  ];
  if (s.initial > 0) parts.push(`${formatBytes(s.initial)} already present`);
  if (s.wasted > 0) parts.push(`${formatBytes(s.wasted)} wasted`);
  return `${parts.join(', ')} -> ${escapeControl(where)}`;
}
