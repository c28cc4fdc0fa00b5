/**
 * Keeps the test runs off the user's own cache: tdl's DHT keeps its routing table under
 * $XDG_CACHE_HOME/tdl/, so every run gets a temporary one, removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tdl-test-cache-'));
  process.env['XDG_CACHE_HOME'] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
