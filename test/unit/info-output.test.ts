/**
 * `tdl info` writes its listing in pieces, folder text reused, files read one at a time: the
 * output is the text the one-string versions made (rebuilt here as the reference), and a
 * stream that asks to wait is waited for.
 */
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeControl, formatBytes } from '../../src/cli/format.js';
import { run } from '../../src/cli/program.js';
import { encode } from '../../src/metainfo/bencode.js';
import { parseTorrent, type TorrentFile } from '../../src/metainfo/torrent.js';
import { tempDir } from '../helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
let file: string;
let torrent: Buffer;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('tdl-info-out-'));
  const files: Record<string, unknown>[] = [];
  for (let i = 0; i < 3000; i++) {
    files.push({ path: [`d${i % 4}`, `s${i % 3}`, `f${i}`], length: 1000 + i });
    if (i % 500 === 0) files.push({ path: ['.pad', `${i}`], length: 7, attr: 'p' });
  }
  files.push({ path: ['x\x1b[31m', 'b\u202e'], length: 5, attr: 'xh' });
  files.push({ path: ['link'], length: 0, attr: 'l', 'symlink path': ['d0', 's0', 'f0'] });
  files.push({ path: ['日本', 'e\u0301'], length: 9 });
  const total = files.reduce((n, f) => n + (f['length'] as number), 0);
  torrent = encode({
    announce: 'http://t.example/a',
    comment: 'c',
    info: {
      name: 'top',
      'piece length': 1024,
      pieces: Buffer.alloc(20 * Math.ceil(total / 1024)),
      files,
    },
  });
  file = path.join(dir, 'x.torrent');
  await writeFile(file, torrent);
});
afterAll(async () => {
  await cleanup?.();
});

/** A stdout that says "wait" on every other write and drains a moment later. */
function slowOut(): { out: EventEmitter & { write(s: string): boolean }; text: () => string } {
  const chunks: string[] = [];
  let n = 0;
  const out = Object.assign(new EventEmitter(), {
    write(s: string): boolean {
      chunks.push(s);
      if (n++ % 2 === 0) return true;
      setTimeout(() => out.emit('drain'), 1);
      return false;
    },
  });
  return { out, text: () => chunks.join('') };
}

function flags(f: TorrentFile): string {
  const out: string[] = [];
  if (f.padding) out.push('padding');
  if (f.executable) out.push('executable');
  if (f.hidden) out.push('hidden');
  if (f.symlink) out.push(`symlink -> ${escapeControl(f.symlink.join('/'))}`);
  return out.length > 0 ? `  [${out.join(', ')}]` : '';
}

describe('tdl info output', () => {
  it('--json: the same line as one JSON.stringify of the whole object', async () => {
    const m = parseTorrent(torrent);
    let n = 0;
    const expected = `${JSON.stringify({
      v: 1,
      name: m.name,
      infoHash: m.infoHashHex,
      size: m.files.reduce((s, f) => s + (f.padding ? 0 : f.length), 0),
      pieceLength: m.pieceLength,
      pieces: m.pieceCount,
      multiFile: m.multiFile,
      hybrid: m.hybrid,
      private: m.private,
      files: m.files.map((f) => ({
        ...(f.padding ? {} : { index: ++n }),
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
    })}\n`;
    const { out, text } = slowOut();
    const code = await run(['info', '--json', file], { stdout: out, stderr: { write: () => {} } });
    expect(code).toBe(0);
    expect(text()).toBe(expected);
  });

  it('text: each file line as before, in pieces of at most 64 KiB', async () => {
    const m = parseTorrent(torrent);
    const real = m.files.filter((f) => !f.padding).length;
    const width = String(real).length;
    let n = 0;
    const lines = m.files.map((f) => {
      const p = `${m.name}/${f.path.join('/')}`;
      const num = f.padding ? ''.padStart(width) : String(++n).padStart(width);
      return `  ${num}  ${formatBytes(f.length).padStart(10)}  ${escapeControl(p)}${flags(f)}\n`;
    });
    const { out, text } = slowOut();
    const code = await run(['info', file], { stdout: out, stderr: { write: () => {} } });
    expect(code).toBe(0);
    const all = text();
    expect(all).toContain(`files:        ${real} (and ${m.files.length - real} padding)\n`);
    expect(all.endsWith(lines.join(''))).toBe(true);
    expect(all).toContain('x\\x1b[31m/b\\u202e');
  });
});
