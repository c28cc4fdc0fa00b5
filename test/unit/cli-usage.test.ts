/**
 * Command lines the parser refuses: exit 2, a `tdl: …` line and the hint on stderr, and with
 * --json an `error` event where the events go (stdout, or stderr alone for `-o -`).
 */
import { describe, expect, it } from 'vitest';
import { JSON_COMMANDS, run, usageJson } from '../../src/cli/program.js';
import { checkEvent } from '../helpers/events-schema.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
  });
  return { code, stdout, stderr };
}

describe('a refused command line', () => {
  it('says so as tdl does everything else: tdl: …, then the hint', async () => {
    const r = await cli(['download', 'x.torrent', '--max-peers', '0']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "tdl: option '--max-peers <n>' argument '0' is invalid: --max-peers must be a whole number from 1 to 10000\n" +
        '(run with --help for usage)\n',
    );
    expect((await cli(['download'])).stderr).toMatch(/^tdl: missing required argument 'torrent'\n/);
    expect((await cli(['dl'])).stderr).toMatch(/^tdl: unknown command 'dl'\n/);
    // What is missing first: the input before -o; -o when the input is there.
    expect((await cli(['create'])).stderr).toMatch(
      /^tdl: missing required argument 'file-or-folder'\n/,
    );
    const noOut = await cli(['create', 'dir']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toBe(
      "tdl: required option '-o, --output <file.torrent>' not specified\n(run with --help for usage)\n",
    );
    // -o without its path takes the next option as one: refused, naming it.
    const lost = await cli(['download', 'x.torrent', '-o', '--peer', '127.0.0.1:5']);
    expect(lost.code).toBe(2);
    expect(lost.stderr).toMatch(
      /^tdl: option '-o, --output <path>' argument '--peer' is invalid: "--peer" is an option, not a path: give -o its path first \(a file named so is \.\/--peer\)\n/,
    );
    // `help` of no command says the same, not the whole help.
    const help = await cli(['help', 'dl']);
    expect(help.code).toBe(2);
    expect(help.stderr).toBe("tdl: unknown command 'dl'\n(run with --help for usage)\n");
    const known = await cli(['help', 'create']);
    expect(known.code).toBe(0);
    expect(known.stdout).toMatch(/^Usage: tdl create \[options\] <file-or-folder>/);
  });

  it('refuses a number option given empty, blank, hex, an exponent or Infinity', async () => {
    // Number() reads '' and ' ' as 0: `--port "$UNSET"` would listen on any port and
    // `--seed-time ""` stop seeding at once, with exit 0.
    const cases: [string, string][] = [
      ['--port', ''],
      ['--port', ' '],
      ['--seed-time', ''],
      ['--seed-ratio', ' '],
      ['--max-peers', '0x10'],
      ['--upload-slots', '1e1'],
      ['--timeout', '1e-300'],
      ['--peer-timeout', 'Infinity'],
      ['--seed-ratio', '-0'],
    ];
    for (const [option, value] of cases) {
      const r = await cli(['download', 'x.torrent', option, value]);
      expect(r.code, `${option} ${JSON.stringify(value)}`).toBe(2);
      expect(r.stderr).toContain(`tdl: option '${option} <`);
      expect(r.stderr).toContain(`argument '${value}' is invalid`);
    }
    // Blanks around a number, and fractions where the option takes them, are still numbers.
    for (const [option, value] of [
      ['--timeout', ' 0.5 '],
      ['--seed-time', '.5'],
      ['--max-peers', ' 7'],
    ] as const) {
      const r = await cli(['download', option, value, '--bogus']);
      expect(r.stderr, `${option} ${value}`).toMatch(/^tdl: unknown option '--bogus'/);
    }
  });

  it('refuses an empty path, address or tracker rather than taking it as none', async () => {
    // `-o ""` was the current folder, `--bind ""` every address, `--tracker ""` no tracker, and
    // `tdl create ""` the current folder.
    const lines: string[][] = [
      ['download', 'x.torrent', '-o', ''],
      ['download', 'x.torrent', '--save-torrent', ''],
      ['seed', 'x.torrent', '--output', ''],
      ['seed', 'x.torrent', '--bind', ''],
      ['verify', 'x.torrent', '-o', ''],
      ['info', 'x.torrent', '--save-torrent', ''],
      ['create', 'dir', '-o', ''],
      ['create', 'dir', '-o', 'x.torrent', '--tracker', 'http://t/a', '--tracker', ''],
    ];
    for (const args of lines) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^tdl: option '.*' argument '' is invalid: must not be empty\n/);
    }
    for (const args of [
      ['download', ''],
      ['info', ''],
      ['verify', ''],
      ['create', '', '-o', 'x'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(
        "tdl: command-argument value '' is invalid for argument 'torrent': must not be empty\n(run with --help for usage)\n".replace(
          'torrent',
          args[0] === 'create' ? 'file-or-folder' : 'torrent',
        ),
      );
    }
  });

  it('refuses a path holding a byte that is not UTF-8 (Node reads it as U+FFFD)', async () => {
    for (const args of [
      ['download', 'x.torrent', '-o', 'caf\uFFFD'],
      ['verify', 'caf\uFFFD.torrent'],
      ['create', 'caf\uFFFD', '-o', 'x.torrent'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(
        'holds a byte that is not UTF-8 (shown as \uFFFD), which tdl cannot name: rename it',
      );
    }
  });

  it('tdl seed takes --seed as it is (it always seeds), not as a typo of --peer', async () => {
    const r = await cli(['seed', '/nonexistent/x.torrent', '--seed']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('unknown option');
    expect(r.stderr).toContain('/nonexistent/x.torrent');
  });

  it('names the upper limit of a time option it refuses', async () => {
    const r = await cli(['download', 'x.torrent', '--timeout', '700000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/at most 604800 \(a week\)/);
  });

  it('with --json, an error event on stdout as well', async () => {
    const r = await cli(['info', '--json', '--bogus', 'x.torrent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tdl: unknown option '--bogus'\n/);
    const event = checkEvent(JSON.parse(r.stdout) as Record<string, unknown>);
    expect(event).toEqual({
      v: 1,
      event: 'error',
      kind: 'usage',
      exitCode: 2,
      message: "unknown option '--bogus'",
    });
  });

  it('with -o - and --json, the event alone on stderr (stdout is for the data)', async () => {
    const r = await cli(['download', 'x.torrent', '-o', '-', '--json', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(checkEvent(JSON.parse(lines[0]!) as Record<string, unknown>)).toMatchObject({
      event: 'error',
      kind: 'usage',
    });
  });

  it('usageJson reads --json and where stdout goes, up to --', () => {
    expect(usageJson(['download', 'x'])).toBeNull();
    expect(usageJson(['download', 'x', '--json'])).toBe('stdout');
    expect(usageJson(['download', 'x', '--json', '-o', '-'])).toBe('stderr');
    expect(usageJson(['download', 'x', '--output=-', '--json'])).toBe('stderr');
    expect(usageJson(['download', 'x', '-o-', '--json'])).toBe('stderr');
    expect(usageJson(['download', 'x', '--output', 'out', '--json'])).toBe('stdout');
    expect(usageJson(['download', '--', '--json'])).toBeNull();
    // Only commands that have --json: create has none, nor an unknown command.
    expect(usageJson(['info', 'x', '--json'])).toBe('stdout');
    expect(usageJson(['create', 'x', '-o', 'y', '--json'])).toBeNull();
    expect(usageJson(['frob', '--json'])).toBeNull();
  });

  it('JSON_COMMANDS names exactly the commands whose --help lists --json', async () => {
    for (const name of ['download', 'seed', 'info', 'verify', 'create']) {
      const r = await cli([name, '--help']);
      expect(r.stdout.includes('--json'), name).toBe(JSON_COMMANDS.has(name));
    }
  });

  it('tdl create --json: an unknown option, said in words only', async () => {
    const r = await cli(['create', 'x', '-o', 'y.torrent', '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("tdl: unknown option '--json'\n(run with --help for usage)\n");
  });
});
