/** Minimal types for the `bittorrent-dht` devDependency (used only by tests and the bench). */
declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events';
  class DHT extends EventEmitter {
    constructor(opts?: Record<string, unknown>);
    listen(port: number, host: string, cb?: () => void): void;
    address(): { address: string; port: number; family: string };
    announce(infoHash: Buffer, port: number, cb?: (err?: Error) => void): void;
    lookup(infoHash: Buffer, cb?: (err?: Error, n?: number) => void): () => void;
    destroy(cb?: () => void): void;
    nodeId: Buffer;
  }
  export default DHT;
}
