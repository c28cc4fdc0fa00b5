export interface GeneratedData {
  size: number;
  pieceLength: number;
  pieceCount: number;
  piece(index: number): Buffer;
}
export function generatedData(size: number, pieceLength: number): GeneratedData;
export function generatedTorrent(
  data: GeneratedData,
  name: string,
): { torrent: Buffer; infoHash: Buffer };
export function startGeneratedSeeder(
  data: GeneratedData,
  infoHash: Buffer,
  opts?: { keep?: boolean },
): Promise<{ port: number; served: () => number; close: () => Promise<void> }>;
