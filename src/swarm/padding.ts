/**
 * BEP 47 padding seen from the pieces: which byte ranges of a piece are padding (known zeros,
 * never asked of a peer: see PiecePicker.fillPadding), and how many bytes of a piece are data.
 * The download's sizes, progress and the trackers' `left` count data bytes, as `tdl info` does.
 */
import { isPaddingFile, paddingFileCount } from '../metainfo/file-table.js';
import type { Metainfo } from '../metainfo/torrent.js';
import type { Layout, PieceSet } from '../storage/layout.js';

export interface PiecePadding {
  /** Whether bytes [start, end) of piece `index` are all padding. */
  isPadding(index: number, start: number, end: number): boolean;
  /** Bytes of piece `index` that are not padding. */
  dataBytes(index: number): number;
}

/** Null for a torrent without padding (every byte is data). */
export function piecePadding(meta: Metainfo, layout: Layout): PiecePadding | null {
  if (paddingFileCount(meta) === 0) return null;
  return {
    isPadding(index, start, end) {
      for (const s of layout.spans(index, start, end - start)) {
        if (!isPaddingFile(meta, s.fileIndex)) return false;
      }
      return true;
    },
    dataBytes(index) {
      return layout.dataBytes(index, (i) => isPaddingFile(meta, i));
    },
  };
}

/** Data bytes of the pieces in `have` (all when null) that are also in `wanted` (if given). */
export function dataBytesOf(
  layout: Layout,
  padding: PiecePadding | null,
  have: PieceSet | null,
  wanted?: PieceSet | null,
): number {
  if (!padding) return layout.bytesOf(have, wanted ?? undefined);
  let n = 0;
  for (let i = 0; i < layout.pieceCount; i++) {
    if ((!have || have.has(i)) && (!wanted || wanted.has(i))) n += padding.dataBytes(i);
  }
  return n;
}
