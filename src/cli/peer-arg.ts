import { UsageError } from '../errors.js';
import type { PeerAddress } from '../tracker/types.js';

/** Parse `host:port`, `[v6]:port`; `option` names the option in the error. */
export function parsePeer(s: string, option = '--peer'): PeerAddress {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${option} ${s}: expected HOST:PORT with a port from 1 to 65535`);
  }
  return { host: m[1]!, port };
}

/** `--dht-bootstrap` values, checked when the command starts (UsageError naming the option). */
export function parseBootstrap(values: readonly string[] | undefined): PeerAddress[] {
  return (values ?? []).map((v) => parsePeer(v, '--dht-bootstrap'));
}
