import { readFile, stat } from 'node:fs/promises';
import { MetainfoError, UsageError } from '../errors.js';
import { escapeControl, redactUrls } from './format.js';
import type { CliIO } from './program.js';
import { MAX_TORRENT_FILE_BYTES, parseTorrent, type Metainfo } from '../metainfo/torrent.js';

/** Read and parse a .torrent file, refusing oversized files before reading them. */
export async function loadTorrent(file: string): Promise<Metainfo> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new UsageError(`${file} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (size > MAX_TORRENT_FILE_BYTES) {
    throw new MetainfoError(
      'file',
      `${size} bytes is larger than the ${MAX_TORRENT_FILE_BYTES} allowed`,
    );
  }
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return parseTorrent(buf);
}

/** Writes the torrent's warnings to stderr as `tdl: warning: ...` lines. */
export function printMetainfoWarnings(m: Metainfo, io: CliIO): void {
  for (const w of m.warnings) io.stderr.write(`tdl: warning: ${escapeControl(redactUrls(w))}\n`);
}
