/**
 * Keeps the test runs off the user's own cache: tdl's DHT keeps its routing table under
 * $XDG_CACHE_HOME/tdl/, so every run gets a temporary one, removed at the end.
 *
 * The CLI runs spawned by the tests go without NODE_EXTRA_CA_CERTS: Node would parse that file
 * (and every built-in root certificate) at each of their starts, tens of milliseconds each, and
 * no test talks to an HTTPS server that needs it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tdl-test-cache-'));
  process.env['XDG_CACHE_HOME'] = dir;
  delete process.env['NODE_EXTRA_CA_CERTS'];
  return () => rmSync(dir, { recursive: true, force: true });
}
