/**
 * The DHT node of a command: `download` and `seed` (on their `--port` and `--bind`), `tdl info`
 * for a magnet link (any free port, lookups only). `--dht-bootstrap` replaces the routers.
 */
import { Dht } from '../dht/dht.js';
import { parsePeer } from './peer-arg.js';

/** The `port` when nothing else is asked: the same number as the TCP listener's default. */
export const DHT_DEFAULT_PORT = 6881;

export interface DhtNodeOptions {
  /** UDP port (0: any free one; a taken one falls back to any). */
  port: number;
  bind?: string;
  /** `--dht-bootstrap` values (`host:port`); none: the well-known routers. */
  bootstrap: readonly string[];
  warn: (message: string) => void;
}

/** A started DHT node; one that fails to start is stopped before the error is thrown. */
export async function startDhtNode(o: DhtNodeOptions): Promise<Dht> {
  const dht = new Dht({
    port: o.port,
    bind: o.bind,
    bootstrap: o.bootstrap.length > 0 ? o.bootstrap.map(parsePeer) : undefined,
  });
  dht.on('warning', o.warn);
  try {
    await dht.start();
  } catch (e) {
    await dht.stop().catch(() => {});
    throw e;
  }
  return dht;
}
