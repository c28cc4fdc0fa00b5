import type { Dht } from '../dht/dht.js';
import { infoHashV2Hex } from '../metainfo/hybrid.js';
import { isMagnet } from '../metainfo/magnet.js';
import type { CliIO } from './program.js';
import { giveUpOnStdout, takenOrStalled } from './stdout-wait.js';
import { jsonLine } from './events.js';
import { escapeControl, formatBytes, printable } from './format.js';
import { parseBootstrap, parsePeer } from './peer-arg.js';
import { openTorrent, type OpenedTorrent } from './source.js';
import { printMetainfoWarnings } from './torrent-file.js';
import { outgoingAddress } from '../tracker/local-addresses.js';
import {
  contentLength,
  fileAt,
  fileCount,
  paddingFileCount,
  type Metainfo,
  type TorrentFile,
} from '../metainfo/torrent.js';

/**
 * File indices, as `--select` takes them, count from 1 in the torrent's own file order, padding
 * files left out (they are never on disk and cannot be selected; they are listed unnumbered).
 */
export const FIRST_INDEX = 1;

/** Flags shown after a file in the text output. */
function flags(f: TorrentFile): string {
  // Most files have none: no array to make.
  if (!f.padding && !f.executable && !f.hidden && !f.symlink) return '';
  const out: string[] = [];
  if (f.padding) out.push('padding');
  if (f.executable) out.push('executable');
  if (f.hidden) out.push('hidden');
  if (f.symlink) out.push(`symlink -> ${escapeControl(f.symlink.join('/'))}`);
  return out.length > 0 ? `  [${out.join(', ')}]` : '';
}

/** The listing is written in pieces of about this many characters. */
const CHUNK = 64 * 1024;

/** stdout took nothing for STDOUT_STALL_MS: thrown by writeChunk, answered by runInfo (exit 141). */
class StdoutGivenUp extends Error {}

/**
 * Writes `s`; when the stream asks to wait (write returned false), resolves once it drains or
 * the run is aborted (a closed stdout), or throws StdoutGivenUp once it takes nothing for
 * STDOUT_STALL_MS (a reader that stopped reading). Resolves false when the run was aborted.
 */
async function writeChunk(io: CliIO, s: string): Promise<boolean> {
  if (io.signal?.aborted) return false;
  if (io.stdout.write(s) !== false) return true;
  const out = io.stdout as Partial<Pick<NodeJS.EventEmitter, 'once' | 'off'>>;
  if (typeof out.once !== 'function') return true;
  let done = (): void => {};
  const drained = new Promise<void>((resolve) => {
    done = (): void => {
      out.off?.('drain', done);
      io.signal?.removeEventListener('abort', done);
      resolve();
    };
    out.once!('drain', done);
    io.signal?.addEventListener('abort', done, { once: true });
  });
  if ((await takenOrStalled(io.stdout, drained)) === 'stalled') {
    done();
    throw new StdoutGivenUp();
  }
  return !io.signal?.aborted;
}

/**
 * What the command writes, gathered into writes of about CHUNK characters: an output smaller
 * than that goes out in one write, so a reader that stops after its first line (`| head -1`)
 * has it all, and the exit code does not depend on when the reader left.
 */
class Batched {
  private pending = '';
  constructor(private readonly io: CliIO) {}
  /** Resolves false when the run was aborted (see writeChunk). */
  add(s: string): boolean | Promise<boolean> {
    this.pending += s;
    return this.pending.length >= CHUNK ? this.flush() : true;
  }
  flush(): boolean | Promise<boolean> {
    if (this.pending === '') return true;
    const s = this.pending;
    this.pending = '';
    return writeChunk(this.io, s);
  }
}

/**
 * The text of each file's folders (all its path but the last name), remade only when they
 * differ from the previous file's: the names of a folder are shared strings (see
 * parseTorrent), so comparing them is cheap, and a torrent lists a folder's files together.
 */
class FolderText {
  private prev: readonly string[] = [];
  private text = '';
  constructor(private readonly make: (path: readonly string[], folders: number) => string) {}
  of(path: readonly string[]): string {
    const n = path.length - 1;
    const prev = this.prev;
    let same = prev.length - 1 === n;
    for (let k = 0; same && k < n; k++) same = prev[k] === path[k];
    if (!same) this.text = this.make(path, n);
    this.prev = path;
    return this.text;
  }
}

/**
 * The `files` array of `tdl info --json`, written piece by piece: the same text as
 * JSON.stringify of one object per file ({index?, path, length, padding?, executable?,
 * hidden?, symlink?}), never held whole.
 */
async function writeJsonFiles(m: Metainfo, out: Batched): Promise<boolean> {
  // `["a","b",` for a file in a/b/.
  const folders = new FolderText((path, n) => {
    let t = '[';
    for (let k = 0; k < n; k++) t += `${JSON.stringify(path[k])},`;
    return t;
  });
  let n = FIRST_INDEX - 1;
  const count = fileCount(m);
  for (let i = 0; i < count; i++) {
    const f = fileAt(m, i);
    // Joined with `+`, not template literals: V8 builds these much faster (100,000 lines).
    let line = i === 0 ? '{' : ',{';
    if (!f.padding) line += '"index":' + ++n + ',';
    line += '"path":' + folders.of(f.path) + JSON.stringify(f.path[f.path.length - 1]) + '],';
    line += '"length":' + f.length;
    if (f.padding) line += ',"padding":true';
    if (f.executable) line += ',"executable":true';
    if (f.hidden) line += ',"hidden":true';
    if (f.symlink) line += `,"symlink":${JSON.stringify(f.symlink)}`;
    line += '}';
    // Awaited only when it wrote: a microtask per file is felt at 100,000 files.
    const added = out.add(line);
    if (added !== true && !(await added)) return false;
  }
  return true;
}

export interface InfoCliOptions {
  json?: boolean;
  /** For magnet links: extra peers, the wait for metadata, where to save it, the DHT. */
  peer?: string[];
  timeout?: number;
  saveTorrent?: string;
  /** commander's `--no-dht`: false when given. */
  dht?: boolean;
  dhtBootstrap?: string[];
  /** Peers, trackers, the DHT and a torrent URL are reached from this address. */
  bind?: string;
}

export async function runInfo(file: string, opts: InfoCliOptions, io: CliIO): Promise<number> {
  try {
    return await showInfo(file, opts, io);
  } catch (e) {
    if (e instanceof StdoutGivenUp) return giveUpOnStdout(io);
    throw e;
  }
}

async function showInfo(file: string, opts: InfoCliOptions, io: CliIO): Promise<number> {
  const peers = (opts.peer ?? []).map((p) => parsePeer(p));
  const bootstrap = parseBootstrap(opts.dhtBootstrap);
  // On a terminal the "fetching metadata" line may be up: a warning wipes it first (it is drawn
  // again a second later), rather than being written after its text.
  const tty = Boolean(io.stderr.isTTY) && !opts.json;
  const warn = (message: string): void => {
    const text = `tdl: warning: ${printable(message)}\n`;
    io.stderr.write(tty ? `\r\x1b[2K${text}` : text);
  };
  // As for `download`: said, not silently dropped.
  if (opts.dht === false && (opts.dhtBootstrap ?? []).length > 0) {
    warn('--dht-bootstrap is not used with --no-dht');
  }
  // A magnet link's peers may come from the DHT too (as for `download`). tdl info does not
  // listen and announces nothing: the DHT node takes any free UDP port and only looks up.
  let dht: Dht | null = null;
  // As for `download`: every connection leaves from --bind, which must be this machine's.
  const localAddress = outgoingAddress(opts.bind);
  if (localAddress !== undefined) {
    const { Listener } = await import('../swarm/listener.js');
    await Listener.checkAddress(localAddress);
  }
  let opened: OpenedTorrent;
  try {
    if (opts.dht !== false && isMagnet(file)) {
      const { startDhtNode } = await import('./dht-node.js');
      dht = await startDhtNode({ port: 0, bind: opts.bind, bootstrap, warn });
    }
    opened = await openTorrent(
      file,
      {
        peers,
        timeoutMs: (opts.timeout ?? 120) * 1000,
        handshakeMs: 15_000,
        saveTorrent: opts.saveTorrent,
        tty,
        warn,
        dht,
        localAddress,
      },
      io,
    );
  } finally {
    await (dht as Dht | null)?.stop().catch(() => {});
  }
  const m = opened.meta;
  // With --json the torrent's warnings are its `warnings` field, as a download gives them as
  // events only; the text report prints them on stderr first.
  if (!opts.json) printMetainfoWarnings(m, io);
  const size = contentLength(m);
  // Files are read one at a time (fileAt): the list of a large torrent is never held whole.
  const files = fileCount(m);
  const padding = paddingFileCount(m);
  if (opts.json) {
    // One JSON line, as jsonLine would make it with `files` between `private` and `trackers`,
    // written in pieces: a 100,000-file torrent never builds it as one string.
    const head = jsonLine({
      name: m.name,
      infoHash: m.infoHashHex,
      size,
      pieceLength: m.pieceLength,
      pieces: m.pieceCount,
      multiFile: m.multiFile,
      hybrid: m.hybrid,
      ...(m.hybrid ? { infoHashV2: infoHashV2Hex(m.info) } : {}),
      private: m.private,
      ...(m.source !== undefined ? { source: m.source } : {}),
    });
    const tail = JSON.stringify({
      trackers: m.announceList,
      webSeeds: m.urlList,
      httpSeeds: m.httpSeeds,
      comment: m.comment,
      createdBy: m.createdBy,
      creationDate: m.creationDate,
      warnings: m.warnings,
    });
    const out = new Batched(io);
    if (!(await out.add(`${head.slice(0, -2)},"files":[`))) return 0;
    if (!(await writeJsonFiles(m, out))) return 0;
    if (await out.add(`],${tail.slice(1)}\n`)) await out.flush();
    return 0;
  }
  const lines = [
    `name:         ${escapeControl(m.name)}`,
    `info hash:    ${m.infoHashHex}${m.hybrid ? ' (v1; hybrid v1+v2 torrent)' : ''}`,
    ...(m.hybrid ? [`info hash v2: ${infoHashV2Hex(m.info)}`] : []),
    `size:         ${formatBytes(size)} (${size} byte${size === 1 ? '' : 's'})`,
    `pieces:       ${m.pieceCount} × ${formatBytes(m.pieceLength)}`,
    `private:      ${m.private ? 'yes' : 'no'}`,
    ...(m.source !== undefined ? [`source:       ${escapeControl(m.source)}`] : []),
  ];
  if (m.comment) lines.push(`comment:      ${escapeControl(m.comment)}`);
  if (m.createdBy) lines.push(`created by:   ${escapeControl(m.createdBy)}`);
  if (m.creationDate !== undefined) lines.push(`created:      ${creationDateText(m.creationDate)}`);
  lines.push(m.announceList.length === 0 ? 'trackers:     (none)' : 'trackers:');
  m.announceList.forEach((tier, i) => {
    for (const url of tier) lines.push(`  tier ${i + 1}: ${escapeControl(url)}`);
  });
  if (m.urlList.length > 0) {
    lines.push('web seeds:');
    for (const url of m.urlList) lines.push(`  ${printable(url)}`);
  }
  if (m.httpSeeds.length > 0) {
    lines.push('http seeds:');
    for (const url of m.httpSeeds) lines.push(`  ${printable(url)}`);
  }
  const count = files - padding;
  lines.push(`files:        ${count}${padding > 0 ? ` (and ${padding} padding)` : ''}`);
  // Human-readable output goes to stdout: it is the command's data. Written in batches, so a
  // 100,000-file torrent never builds its whole listing as one string.
  const out = new Batched(io);
  if (!(await out.add(`${lines.join('\n')}\n`))) return 0;
  // Files are numbered from 1, padding left out: the numbers `--select` takes.
  const width = String(count).length;
  const blank = ''.padStart(width);
  // `top/a/b/` for a file in a/b/, escaped (names never hold half a character, so escaping
  // name by name gives the text escaping the whole path would).
  const top = `${escapeControl(m.name)}/`;
  const folders = new FolderText((path, k) => {
    let t = top;
    for (let i = 0; i < k; i++) t += `${escapeControl(path[i]!)}/`;
    return t;
  });
  let n = FIRST_INDEX - 1;
  for (let i = 0; i < files; i++) {
    const f = fileAt(m, i);
    const p = m.multiFile
      ? folders.of(f.path) + escapeControl(f.path[f.path.length - 1]!)
      : escapeControl(m.name);
    const num = f.padding ? blank : String(++n).padStart(width);
    // Joined with `+`, not a template literal: V8 builds it much faster (100,000 lines).
    const line = '  ' + num + '  ' + formatBytes(f.length).padStart(10) + '  ' + p + flags(f);
    const added = out.add(line + '\n');
    if (added !== true && !(await added)) return 0;
  }
  await out.flush();
  return 0;
}

/**
 * A torrent's `creation date` (seconds since 1970, as the torrent says) as an ISO date, or the
 * number itself when no date has it (some creators write milliseconds or microseconds: JavaScript
 * dates end in the year 275760).
 */
function creationDateText(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime())
    ? `${seconds} (not a date: seconds since 1970)`
    : d.toISOString();
}
