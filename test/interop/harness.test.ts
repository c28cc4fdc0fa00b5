/**
 * The real-program harness itself: what the interop tests and the benchmark rely on.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GNU_TIME,
  PYTHON,
  compareTrees,
  freePort,
  makePayload,
  makeTempDir,
  runMeasured,
  stopAll,
} from '../../scripts/lib/real-peers.mjs';

/** Touches 64 MiB, then busy-loops ~200 ms. */
const WORKLOAD =
  'const b = Buffer.alloc(64 * 1024 * 1024, 1); const end = Date.now() + 200; ' +
  'let x = 0; while (Date.now() < end) x += b[x % b.length]; console.log("ok", x > 0);';

/** Whether a process exists and is not a zombie (a killed orphan may wait a while for reaping). */
async function running(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

afterAll(async () => {
  await stopAll();
});

describe('runMeasured', () => {
  const measurers: ('time' | 'python')[] = [];
  if (existsSync(GNU_TIME)) measurers.push('time');
  if (existsSync(PYTHON)) measurers.push('python');

  it.each(measurers)('reports wall time, CPU time and peak RSS (%s)', async (measurer) => {
    const lines: string[] = [];
    const run = await runMeasured(process.execPath, ['-e', WORKLOAD], {
      measurer,
      timeoutMs: 20_000,
      onStdoutLine: (line) => lines.push(line),
    });
    expect(run.code).toBe(0);
    expect(lines).toEqual(['ok true']);
    expect(run.wallMs).toBeGreaterThanOrEqual(200);
    expect(run.cpuMs).toBeGreaterThanOrEqual(100);
    expect(run.peakRssKb).toBeGreaterThan(64 * 1024);
  });

  it('returns a non-zero exit code with the stderr tail', async () => {
    const run = await runMeasured('sh', ['-c', 'echo boom >&2; exit 3'], { timeoutMs: 10_000 });
    expect(run.code).toBe(3);
    expect(run.stderrTail).toContain('boom');
  });

  it('kills the whole process group on timeout and says so', async () => {
    const dir = await makeTempDir();
    const pidFile = path.join(dir, 'pid');
    const started = Date.now();
    await expect(
      runMeasured('sh', ['-c', `sleep 30 & echo $! > ${pidFile}; echo waiting >&2; wait`], {
        timeoutMs: 500,
      }),
    ).rejects.toThrow(/timed out after 500 ms[\s\S]*waiting/);
    expect(Date.now() - started).toBeLessThan(10_000);
    const grandchild = Number(await fs.readFile(pidFile, 'utf8'));
    // SIGKILL takes effect when the killed process next runs: on a busy machine, some time
    // after the harness saw its own child exit.
    const deadline = Date.now() + 5_000;
    while ((await running(grandchild)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await running(grandchild)).toBe(false);
  });
});

describe('helpers', () => {
  it('freePort hands out distinct ports', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    expect(new Set(ports).size).toBe(3);
  });

  it('compareTrees finds a changed byte, a missing file and an extra one', async () => {
    const dir = await makeTempDir();
    const spec = {
      name: 'p',
      files: [
        { path: ['a.bin'], size: 70_000 },
        { path: ['d', 'b.bin'], size: 1_234 },
      ],
    };
    const src = await makePayload(path.join(dir, 'src'), spec);
    const copy = path.join(dir, 'copy');
    await fs.cp(src, copy, { recursive: true });
    expect(await compareTrees(src, copy)).toEqual([]);

    const fh = await fs.open(path.join(copy, 'a.bin'), 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 69_999);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await fh.write(byte, 0, 1, 69_999);
    await fh.close();
    await fs.rm(path.join(copy, 'd', 'b.bin'));
    await fs.writeFile(path.join(copy, 'extra'), 'x');
    expect((await compareTrees(src, copy)).sort()).toEqual(
      ['a.bin: content differs', `${path.join('d', 'b.bin')}: missing`, 'extra: unexpected'].sort(),
    );
  });
});
