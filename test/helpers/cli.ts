/** Run the real CLI entry point in process, capturing what it writes. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../src/cli/program.js';
import { checkEvent } from './events-schema.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /**
   * Parsed --json events (lines of stdout that are JSON objects), each checked against
   * docs/events.schema.json: runCli throws on one that does not follow it.
   */
  events: Record<string, unknown>[];
}

export async function runCli(
  args: string[],
  opts: {
    tty?: boolean;
    columns?: number;
    signal?: AbortSignal;
    /** Called with all of stdout so far at each write (to act on an event as it comes). */
    onStdout?: (stdout: string) => void;
  } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: {
      write: (s: string) => {
        stdout += s;
        opts.onStdout?.(stdout);
        return true;
      },
    },
    stderr: {
      write: (s: string) => (stderr += s),
      isTTY: opts.tty ?? false,
      columns: opts.columns ?? 120,
    },
    signal: opts.signal,
  });
  const events: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // not an event line
    }
    events.push(checkEvent(o));
  }
  return { code, stdout, stderr, events };
}

/** A temp folder removed by the returned cleanup. */
export async function tempDir(
  prefix = 'tdl-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
