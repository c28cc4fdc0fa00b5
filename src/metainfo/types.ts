/**
 * A parsed torrent (what parseTorrent in torrent.ts returns) and the caps on what is accepted.
 */

/** Largest .torrent file accepted (the CLI checks the size before reading). */
export const MAX_TORRENT_FILE_BYTES = 64 * 1024 * 1024;
/** Largest piece length accepted (bounds the memory held by in-flight pieces). */
export const MAX_PIECE_LENGTH = 64 * 1024 * 1024;
/** Most files accepted in a multi-file torrent. */
export const MAX_FILES = 100_000;

export interface TorrentFile {
  path: string[];
  length: number;
  /** Byte offset of this file in the torrent's concatenated data. */
  offset: number;
  /** BEP 47 padding (`attr` has `p`, or an old `_____padding_file_` name): known zeros, never created on disk. */
  padding?: boolean;
  /** BEP 47 `attr` has `x`: made executable once complete. */
  executable?: boolean;
  /** BEP 47 `attr` has `h`: nothing to do on Linux; shown by `tdl info`. */
  hidden?: boolean;
  /**
   * BEP 47 `attr` has `l`: a symbolic link (length 0, never written) whose target is this path,
   * relative to the torrent's top folder. Checked like a file path, so it stays inside it.
   */
  symlink?: string[];
}

export interface Metainfo {
  /** SHA-1 of the raw `info` bytes exactly as they appear in the file. */
  infoHash: Buffer;
  /** Those raw `info` bytes (served to peers that fetch the metadata, BEP 9). */
  info: Buffer;
  infoHashHex: string;
  /** NFC-normalised. */
  name: string;
  pieceLength: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 hashes. */
  pieceHashes: Buffer;
  /** Total bytes, padding files included (the byte space pieces are cut from). */
  length: number;
  multiFile: boolean;
  /** Single-file: [{ path: [name], length, offset: 0 }]; multi-file: paths without the top folder. */
  files: TorrentFile[];
  announce: string | undefined;
  /** BEP 12 tiers if `announce-list` is present and non-empty, else [[announce]], else []. */
  announceList: string[][];
  private: boolean;
  /** `info.source` (a private tracker's mark; part of the info hash). */
  source?: string;
  comment?: string;
  createdBy?: string;
  creationDate?: number;
  /** BEP 19 web seeds (`url-list`): http(s) URLs only. */
  urlList: string[];
  /** BEP 17 HTTP seeds (`httpseeds`): http(s) URLs only. */
  httpSeeds: string[];
  /** DHT contacts for trackerless torrents (BEP 5 `nodes`), at most MAX_NODES. */
  nodes: { host: string; port: number }[];
  /** BEP 52 hybrid torrent (v1 and v2 metadata): tdl uses the v1 part and the v1 info hash. */
  hybrid: boolean;
  /** Things accepted but worth telling the user (trailing bytes, remapped names, bad seeds). */
  warnings: string[];
}
