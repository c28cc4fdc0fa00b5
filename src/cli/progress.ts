/** The live progress lines (stderr, TTY only) and the final summaries. */
import type { DownloadStats } from '../swarm/download-api.js';
import {
  displayWidth,
  escapeControl,
  formatBytes,
  formatPartBytes,
  formatDuration,
  formatRate,
  percentDown,
  truncateToWidth,
} from './format.js';

export const BAR_WIDTH = 24;

function bar(frac: number, width = BAR_WIDTH): string {
  const filled = Math.max(0, Math.min(width, Math.floor(frac * width)));
  return '#'.repeat(filled) + '-'.repeat(width - filled);
}

/** The progress bar's width on a terminal of `columns`: narrower below 120, none below 80. */
function barWidth(columns: number): number {
  return columns >= 120 ? BAR_WIDTH : columns >= 80 ? BAR_WIDTH / 2 : 0;
}

/** Cut to the terminal's width by columns, not UTF-16 units: wider lines wrap and break `\r`. */
function fit(line: string, columns: number): string {
  return truncateToWidth(line, Math.max(0, columns - 1));
}

function percent(part: number, total: number): string {
  return percentDown(part, total).toFixed(1);
}

/** Columns of the name that the progress line keeps before it gives up any other field. */
const NAME_KEEP_COLUMNS = 16;
/** Columns of the name kept before whole fields go from the end (see layout). */
const NAME_MIN_COLUMNS = 8;

/**
 * The fields of a line, in order, each with the rank at which a narrow terminal drops it (0:
 * never; the highest goes first). The last field, the name, is cut rather than dropped.
 */
function layout(fields: readonly (readonly [string, number])[], columns: number): string {
  const room = Math.max(0, columns - 1);
  const name = fields[fields.length - 1]![0];
  const kept = [...fields];
  const width = (fs: typeof kept) =>
    fs.slice(0, -1).reduce((w, [t]) => w + displayWidth(t) + 2, 0) +
    Math.min(displayWidth(name), NAME_KEEP_COLUMNS);
  for (let rank = Math.max(...fields.map(([, r]) => r)); rank > 0; rank--) {
    if (width(kept) <= room) break;
    for (let i = kept.length - 2; i >= 0; i--) if (kept[i]![1] === rank) kept.splice(i, 1);
  }
  // Narrower still, where the name would get fewer than NAME_MIN_COLUMNS: whole fields go from
  // the end (the ETA first), the first always stays; a field cut in its middle would misread
  // ("ETA 00" for "ETA 00:01"), and a name of one or two letters says nothing. The name takes
  // what is left.
  const fixed = (fs: typeof kept) => fs.slice(0, -1).reduce((w, [t]) => w + displayWidth(t) + 2, 0);
  const least = Math.min(displayWidth(name), NAME_MIN_COLUMNS);
  while (kept.length > 2 && fixed(kept) + least > room) kept.splice(kept.length - 2, 1);
  return fit(kept.map(([t]) => t).join('  '), columns);
}

export function progressLine(s: DownloadStats, name: string, columns: number): string {
  const frac = s.total > 0 ? s.completed / s.total : 1;
  const pct = percent(s.completed, s.total).padStart(5);
  const eta = s.rate > 0 ? formatDuration(((s.total - s.completed) / s.rate) * 1000) : '--:--';
  // A resumed download says where it started from.
  const from = s.initial > 0 ? ` (from ${percent(s.initial, s.total)}%)` : '';
  const bw = barWidth(columns);
  // On a narrow terminal the upload figures go first, then the peers; the bar, the bytes, the
  // speed, the ETA and the start of the name stay.
  return layout(
    [
      [`${bw > 0 ? `[${bar(frac, bw)}] ${pct}` : pct.trimStart()}%${from}`, 0],
      [`${formatPartBytes(s.completed, s.total)}/${formatBytes(s.total)}`, 0],
      [formatRate(s.rate), 0],
      [`up ${formatRate(s.uploadRate)} ratio ${ratio(s)}`, 3],
      [`peers ${s.active}/${s.connected}`, 1],
      [`serving ${s.served}`, 2],
      // The DHT's nodes and the peers it found: the first to go on a narrow terminal.
      ...(s.dht ? [[`dht ${s.dht.nodes}/${s.dht.peers}`, 4] as const] : []),
      // Every byte in: what is left is the writes, the checks and the final names (seconds for
      // tens of thousands of files), which an ETA of 00:00 would hide.
      [s.completed >= s.total ? 'finishing' : `ETA ${eta}`, 0],
      // Raw: fitting escapes it, and never cuts an escape in two (`\u20` for `\u200b`).
      [name, 0],
    ],
    columns,
  );
}

function ratio(s: DownloadStats): string {
  return (s.total > 0 ? s.uploaded / s.total : 0).toFixed(2);
}

/**
 * The summary of a seeding run (`s.elapsedMs`: the time spent seeding). After a download,
 * `uploadedBefore` is what went out while it ran: the line gives what seeding sent, then the
 * run's total and its ratio.
 */
export function seedSummaryLine(s: DownloadStats, where: string, uploadedBefore = 0): string {
  const from = escapeControl(where);
  if (uploadedBefore <= 0) {
    return `seeded: ${formatBytes(s.uploaded)} uploaded (ratio ${ratio(s)}) in ${took(s.elapsedMs)} from ${from}`;
  }
  const sent = formatBytes(Math.max(0, s.uploaded - uploadedBefore));
  return `seeded: ${sent} uploaded in ${took(s.elapsedMs)} (${formatBytes(s.uploaded)} in all, ratio ${ratio(s)}) from ${from}`;
}

/** How long a run took: seconds to a tenth under a minute ("0.5 s"), else MM:SS or H:MM:SS. */
function took(ms: number): string {
  return ms < 59_950 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s` : formatDuration(ms);
}

/** The live line while seeding. */
export function seedLine(s: DownloadStats, name: string, columns: number): string {
  // Fitted as the progress line is: the peers go first, then the ratio; no field cut in two.
  return layout(
    [
      ['seeding', 0],
      [`up ${formatRate(s.uploadRate)}`, 0],
      [`${formatBytes(s.uploaded)} sent`, 0],
      [`ratio ${ratio(s)}`, 2],
      [`peers ${s.connected} serving ${s.served}`, 1],
      [name, 0],
    ],
    columns,
  );
}

export function summaryLine(s: DownloadStats, where: string): string {
  const secs = s.elapsedMs / 1000;
  const avg = secs > 0 ? s.downloaded / secs : 0;
  const parts = [
    `done: ${formatBytes(s.total)} in ${took(s.elapsedMs)}`,
    `avg ${formatRate(avg)}`,
    `${s.peersUsed} peer${s.peersUsed === 1 ? '' : 's'} used`,
  ];
  if (s.fromWebSeeds > 0) parts.push(`${formatBytes(s.fromWebSeeds)} of it from web seeds`);
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
      w.webSeed > 0 ? `${formatBytes(w.webSeed)} from web seeds` : '',
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
  const bw = barWidth(columns);
  const pct = `${percent(checked, total).padStart(5)}%`;
  // Fitted as the progress line is: the valid bytes go first; no field cut in two.
  return layout(
    [
      [bw > 0 ? `[${bar(frac, bw)}] ${pct}` : pct.trimStart(), 0],
      [`checking ${formatPartBytes(checked, total)}/${formatBytes(total)}`, 0],
      [`valid ${formatBytes(valid)}`, 1],
      [name, 0],
    ],
    columns,
  );
}

/**
 * The line shown while the files are looked for on disk, before the check's first figures: on
 * a torrent of tens of thousands of files, seconds.
 */
export function lookingLine(files: number, name: string, columns: number): string {
  return fit(`looking for ${files} file${files === 1 ? '' : 's'} on disk  ${name}`, columns);
}

/** What a magnet link's line shows while its metadata is fetched. */
export interface MetadataProgress {
  withMetadata: number;
  connected: number;
  known: number;
  /** The DHT's nodes, when it runs. */
  dhtNodes?: number;
  /** The link's `dn`, until the metadata names the torrent. */
  name?: string;
}

/**
 * "fetching metadata from N of M peers (K known, dht D nodes)  NAME", fitted to the terminal as
 * the progress line is: the details go whole (the DHT's first), then the line's words shorten,
 * while the name keeps 16 columns; then the name is cut; narrower still, the name goes, and a
 * field is never cut in its middle (only the shortest form, below about 20 columns).
 */
export function metadataLine(p: MetadataProgress, columns: number): string {
  const max = columns - 1;
  const dht = p.dhtNodes === undefined ? '' : `, dht ${p.dhtNodes} nodes`;
  const core = `fetching metadata from ${p.withMetadata} of ${p.connected} peers`;
  const forms = [
    `${core} (${p.known} known${dht})`,
    `${core} (${p.known} known)`,
    core,
    `metadata from ${p.withMetadata}/${p.connected} peers`,
  ];
  const name = p.name ?? '';
  if (name !== '') {
    const keep = Math.min(NAME_KEEP_COLUMNS, displayWidth(name));
    for (const f of forms) {
      const room = max - displayWidth(f) - 2;
      if (room >= keep) return `${f}  ${truncateToWidth(name, room)}`;
    }
  }
  for (const f of forms) if (displayWidth(f) <= max) return f;
  return truncateToWidth(forms[forms.length - 1]!, max);
}
