/**
 * A Download (src/swarm/download.ts) in process whose pieces are kept in memory, for tests that
 * add peers while it runs: `bytes()` is what it wrote, in order (pieces not written are left out).
 */
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import type { DownloadOptions } from '../../src/swarm/download-api.js';
import { Download } from '../../src/swarm/download.js';

export function memoryDownload(
  torrent: Buffer,
  o: Omit<DownloadOptions, 'meta' | 'layout' | 'storage'>,
): { dl: Download; written: Map<number, Buffer>; bytes(): Buffer } {
  const meta = parseTorrent(torrent);
  const layout = new Layout(meta.files, meta.pieceLength, meta.length);
  const written = new Map<number, Buffer>();
  const dl = new Download({
    ...o,
    meta,
    layout,
    storage: {
      writePiece: (index: number, piece: Buffer) => {
        written.set(index, Buffer.from(piece));
        return Promise.resolve();
      },
      readBlock: () => Promise.reject(new Error('not kept')),
    },
  });
  const bytes = () =>
    Buffer.concat([...written.keys()].sort((a, b) => a - b).map((i) => written.get(i)!));
  return { dl, written, bytes };
}
