import type { CliIO } from './program.js';
import { jsonLine } from './events.js';
import { escapeControl, formatBytes, redactUrls } from './format.js';
import { parsePeer } from './peer-arg.js';
import { openTorrent } from './source.js';
import { printMetainfoWarnings } from './torrent-file.js';
import { contentLength, type TorrentFile } from '../metainfo/torrent.js';

/**
 * File indices, as `--select` takes them, count from 1 in the torrent's own file order, padding
 * files left out (they are never on disk and cannot be selected; they are listed unnumbered).
 */
export const FIRST_INDEX = 1;

/** Flags shown after a file in the text output. */
function flags(f: TorrentFile): string {
  const out: string[] = [];
  if (f.padding) out.push('padding');
  if (f.executable) out.push('executable');
  if (f.hidden) out.push('hidden');
  if (f.symlink) out.push(`symlink -> ${f.symlink.join('/')}`);
  return out.length > 0 ? `  [${out.join(', ')}]` : '';
}

/** Each file with its number as `--select` takes it (none for a padding file). */
function numbered(files: readonly TorrentFile[]): [TorrentFile, number | undefined][] {
  let n = FIRST_INDEX - 1;
  return files.map((f) => [f, f.padding ? undefined : ++n]);
}

export interface InfoCliOptions {
  json?: boolean;
  /** For magnet links: extra peers, the wait for metadata, where to save it. */
  peer?: string[];
  timeout?: number;
  saveTorrent?: string;
}

export async function runInfo(file: string, opts: InfoCliOptions, io: CliIO): Promise<number> {
  const { meta: m } = await openTorrent(
    file,
    {
      peers: (opts.peer ?? []).map(parsePeer),
      timeoutMs: (opts.timeout ?? 120) * 1000,
      handshakeMs: 15_000,
      saveTorrent: opts.saveTorrent,
      tty: Boolean(io.stderr.isTTY) && !opts.json,
      warn: (message) => io.stderr.write(`tdl: warning: ${escapeControl(redactUrls(message))}\n`),
    },
    io,
  );
  printMetainfoWarnings(m, io);
  const size = contentLength(m);
  const padding = m.files.reduce((n, f) => n + (f.padding ? 1 : 0), 0);
  if (opts.json) {
    io.stdout.write(
      jsonLine({
        name: m.name,
        infoHash: m.infoHashHex,
        size,
        pieceLength: m.pieceLength,
        pieces: m.pieceCount,
        multiFile: m.multiFile,
        hybrid: m.hybrid,
        private: m.private,
        files: numbered(m.files).map(([f, index]) => ({
          ...(index !== undefined ? { index } : {}),
          path: f.path,
          length: f.length,
          ...(f.padding ? { padding: true } : {}),
          ...(f.executable ? { executable: true } : {}),
          ...(f.hidden ? { hidden: true } : {}),
          ...(f.symlink ? { symlink: f.symlink } : {}),
        })),
        trackers: m.announceList,
        webSeeds: m.urlList,
        httpSeeds: m.httpSeeds,
        comment: m.comment,
        createdBy: m.createdBy,
        creationDate: m.creationDate,
        warnings: m.warnings,
      }),
    );
    return 0;
  }
  const lines = [
    `name:         ${escapeControl(m.name)}`,
    `info hash:    ${m.infoHashHex}${m.hybrid ? ' (v1; hybrid v1+v2 torrent)' : ''}`,
    `size:         ${formatBytes(size)} (${size} bytes)`,
    `pieces:       ${m.pieceCount} × ${formatBytes(m.pieceLength)}`,
    `private:      ${m.private ? 'yes' : 'no'}`,
  ];
  if (m.comment) lines.push(`comment:      ${escapeControl(m.comment)}`);
  if (m.createdBy) lines.push(`created by:   ${escapeControl(m.createdBy)}`);
  if (m.creationDate !== undefined) {
    lines.push(`created:      ${new Date(m.creationDate * 1000).toISOString()}`);
  }
  lines.push(`trackers:     ${m.announceList.length === 0 ? '(none)' : ''}`);
  m.announceList.forEach((tier, i) => {
    for (const url of tier) lines.push(`  tier ${i + 1}: ${escapeControl(url)}`);
  });
  if (m.urlList.length > 0) {
    lines.push('web seeds:');
    for (const url of m.urlList) lines.push(`  ${escapeControl(redactUrls(url))}`);
  }
  if (m.httpSeeds.length > 0) {
    lines.push('http seeds:');
    for (const url of m.httpSeeds) lines.push(`  ${escapeControl(redactUrls(url))}`);
  }
  const count = m.files.length - padding;
  lines.push(`files:        ${count}${padding > 0 ? ` (and ${padding} padding)` : ''}`);
  // Human-readable output goes to stdout: it is the command's data. Written in batches, so a
  // 100,000-file torrent never builds its whole listing as one string.
  io.stdout.write(`${lines.join('\n')}\n`);
  let batch = '';
  // Files are numbered from 1, padding left out: the numbers `--select` takes.
  const width = String(m.files.length - padding).length;
  let n = 0;
  for (const f of m.files) {
    const p = m.multiFile ? `${m.name}/${f.path.join('/')}` : m.name;
    const num = f.padding ? ''.padStart(width) : String(++n).padStart(width);
    batch += `  ${num}  ${formatBytes(f.length).padStart(10)}  ${escapeControl(p)}${flags(f)}\n`;
    if (batch.length >= 64 * 1024) {
      io.stdout.write(batch);
      batch = '';
    }
  }
  if (batch !== '') io.stdout.write(batch);
  return 0;
}
