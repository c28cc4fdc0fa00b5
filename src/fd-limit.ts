/**
 * The process's soft limit on open file descriptors (RLIMIT_NOFILE), which sizes what holds
 * descriptors: the storage's pool of open files (storage/file-pool.ts) and the trackers'
 * announces in flight (tracker/announcer.ts).
 */
import { readFileSync } from 'node:fs';
import { logger } from './log.js';

const log = logger('tdl:limits');

/** Assumed when the limit cannot be read. */
export const FALLBACK_FD_LIMIT = 1024;

/** Parse the soft "Max open files" limit out of /proc/self/limits text; null if absent. */
export function parseFdLimit(text: string): number | null {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m) return null;
  if (m[1] === 'unlimited') return 1_048_576;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

let cachedLimit: number | null = null;

/** The process's soft open-file limit (read once). */
export function fdLimit(): number {
  if (cachedLimit !== null) return cachedLimit;
  let limit: number | null = null;
  try {
    limit = parseFdLimit(readFileSync('/proc/self/limits', 'latin1'));
  } catch {
    // Not Linux, or no /proc: assume the usual desktop limit.
  }
  cachedLimit = limit ?? FALLBACK_FD_LIMIT;
  log('open-file limit %d', cachedLimit);
  return cachedLimit;
}
