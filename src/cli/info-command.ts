import type { CliIO } from './program.js';
import { escapeControl, formatBytes } from './format.js';
import { loadTorrent } from './torrent-file.js';

export async function runInfo(file: string, opts: { json?: boolean }, io: CliIO): Promise<number> {
  const m = await loadTorrent(file, { stdin: io.stdin, signal: io.signal });
  if (opts.json) {
    io.stdout.write(
      `${JSON.stringify({
        name: m.name,
        infoHash: m.infoHashHex,
        size: m.length,
        pieceLength: m.pieceLength,
        pieces: m.pieceCount,
        multiFile: m.multiFile,
        private: m.private,
        files: m.files.map((f) => ({ path: f.path, length: f.length })),
        trackers: m.announceList,
        comment: m.comment,
        createdBy: m.createdBy,
        creationDate: m.creationDate,
      })}\n`,
    );
    return 0;
  }
  const lines = [
    `name:         ${escapeControl(m.name)}`,
    `info hash:    ${m.infoHashHex}`,
    `size:         ${formatBytes(m.length)} (${m.length} bytes)`,
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
  lines.push(`files:        ${m.files.length}`);
  for (const f of m.files) {
    const p = m.multiFile ? [m.name, ...f.path].join('/') : m.name;
    lines.push(`  ${formatBytes(f.length).padStart(10)}  ${escapeControl(p)}`);
  }
  // Human-readable output goes to stdout: it is the command's data.
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
