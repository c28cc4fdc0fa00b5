/**
 * The DHT node of a command: `download` and `seed` (on their `--port` and `--bind`), `tdl info`
 * for a magnet link (any free port, lookups only). `--dht-bootstrap` replaces the routers.
 */
import { Dht } from '../dht/dht.js';
import { TdlError } from '../errors.js';
import { ipFamily } from '../tracker/compact.js';
import type { PeerAddress } from '../tracker/types.js';

/** The `port` when nothing else is asked: the same number as the TCP listener's default. */
export const DHT_DEFAULT_PORT = 6881;

export interface DhtNodeOptions {
  /** UDP port (0: any free one; a taken one falls back to any). */
  port: number;
  bind?: string;
  /** `--dht-bootstrap` nodes (peer-arg.ts parseBootstrap); none: the well-known routers. */
  bootstrap: readonly PeerAddress[];
  warn: (message: string) => void;
}

/** Why no DHT node can run with this `--bind` (the DHT is IPv4 only), or null when one can. */
export function dhtUnusable(bind: string | undefined): string | null {
  return bind !== undefined && ipFamily(bind) === 6
    ? `the DHT is IPv4 only: not used with --bind ${bind}`
    : null;
}

/**
 * A started DHT node, or null when none can run: the DHT is one source of peers among others,
 * so a node that cannot listen (a `--bind` address it cannot use) is a warning and the command
 * goes on without it. The DHT is IPv4 only: an IPv6 `--bind` runs none.
 */
export async function startDhtNode(o: DhtNodeOptions): Promise<Dht | null> {
  const why = dhtUnusable(o.bind);
  if (why !== null) {
    o.warn(why);
    return null;
  }
  const dht = new Dht({
    port: o.port,
    bind: o.bind,
    bootstrap: o.bootstrap.length > 0 ? [...o.bootstrap] : undefined,
  });
  dht.on('warning', o.warn);
  try {
    await dht.start();
  } catch (e) {
    await dht.stop().catch(() => {});
    if (!(e instanceof TdlError)) throw e;
    o.warn(`the DHT is off: ${e.message}`);
    return null;
  }
  return dht;
}
