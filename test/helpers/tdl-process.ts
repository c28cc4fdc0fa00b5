/**
 * The built CLI (`node dist/bundle/main.js`) as a child process, for end-to-end tests that need a
 * real process: its own memory (VmHWM), its own event loop, signals.
 *
 *   const tdl = spawnTdl(['seed', torrent, '-o', out, '--port', '0', '--json'], fx.onClose);
 *   const port = await tdl.port();
 *   ...
 *   const { code } = await tdl.exited;
 *
 * The child runs in its own process group and is killed (SIGKILL, group and all) by the closer
 * registered with `onClose`, however the test ends. Build first (`npm run build`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../dist/bundle/main.js', import.meta.url));

export type TdlEvent = Record<string, unknown> & { event?: string };

export interface TdlProcess {
  child: ChildProcess;
  /** Parsed `--json` events, as they arrive. */
  events: TdlEvent[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first event of this kind (waits for it; fails if the process exits first). */
  waitEvent(name: string, timeoutMs?: number, match?: (e: TdlEvent) => boolean): Promise<TdlEvent>;
  /** The listening port from the `started` event. */
  port(timeoutMs?: number): Promise<number>;
  /** Peak resident memory so far in bytes (VmHWM), or null once the process is gone. */
  peakRss(): number | null;
  /** SIGINT, then the exit. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function assertBuilt(): void {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: build the CLI first with \`npm run build\``);
  }
}

/**
 * After the test, `child` (spawned `detached`: a process group of its own) is killed with its
 * whole group if it still runs, and its exit awaited: no process outlives a test, however it ends.
 */
export function killWithTest(
  child: ChildProcess,
  exited: Promise<unknown>,
  onClose: (close: () => Promise<void>) => void,
): void {
  onClose(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
  });
}

export function spawnTdl(
  args: string[],
  onClose: (close: () => Promise<void>) => void,
): TdlProcess {
  const child = spawn(process.execPath, [MAIN, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '' },
  });
  const events: TdlEvent[] = [];
  let stdout = '';
  let stderr = '';
  let gone = false;
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const w of [...wakers]) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as TdlEvent);
      } catch {
        // not an event
      }
    }
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      gone = true;
      wake();
      resolve({ code, signal });
    }),
  );
  killWithTest(child, exited, onClose);

  const waitEvent = (name: string, timeoutMs = 20_000, match?: (e: TdlEvent) => boolean) =>
    new Promise<TdlEvent>((resolve, reject) => {
      const check = () => {
        const e = events.find((x) => x.event === name && (!match || match(x)));
        if (e) return finish(() => resolve(e));
        if (gone) {
          finish(() =>
            reject(
              new Error(
                `tdl exited (${String(child.exitCode)}) before a ${name} event: ${stderr.slice(-2000)}`,
              ),
            ),
          );
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no ${name} event within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const finish = (f: () => void) => {
        clearTimeout(timer);
        wakers.delete(check);
        f();
      };
      wakers.add(check);
      check();
    });

  return {
    child,
    events,
    stderr: () => stderr,
    exited,
    waitEvent,
    async port(timeoutMs) {
      const e = await waitEvent('started', timeoutMs);
      return e['port'] as number;
    },
    peakRss() {
      if (gone || child.pid === undefined) return null;
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
    async interrupt() {
      if (!gone) child.kill('SIGINT');
      return exited;
    },
  };
}

/** Polls `get` until it returns a value; throws after `ms`. */
export async function until<T>(
  get: () => T | undefined | false,
  ms: number,
  what: string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Whether process `pid` catches `signal` (its handler is installed: Linux's SigCgt mask in
 * /proc); false when that cannot be read.
 */
export function catchesSignal(pid: number, signal: number): boolean {
  try {
    const line = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return line !== null && (BigInt(`0x${line[1]}`) >> BigInt(signal - 1)) % 2n === 1n;
  } catch {
    return false;
  }
}

/**
 * Runs the built CLI with `args`, sends SIGINT `afterMs` after tdl has its handler for it (a
 * busy machine may take longer than that to start Node: the signal then killed it outright),
 * and resolves with its exit code and stderr. A process still there 10 s after the signal is
 * killed (its code is then null): for tests of runs that must end on Ctrl-C whatever they wait
 * for.
 */
export async function interruptAfter(
  args: string[],
  afterMs = 500,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let gone = false;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      gone = true;
      r(code);
    }),
  );
  // SIGINT is signal 2 on Linux.
  for (const end = Date.now() + 20_000; !gone && Date.now() < end;) {
    if (child.pid !== undefined && catchesSignal(child.pid, 2)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, afterMs));
  child.kill('SIGINT');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(killer);
  return { code, stderr };
}
