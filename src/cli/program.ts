/**
 * The commander program: parses arguments, runs one command, turns errors into a message on
 * stderr and an exit code. No protocol logic lives here.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  DiskError,
  EventsIntoDataError,
  StdoutClosedError,
  TdlError,
  UsageError,
} from '../errors.js';
import type { CreateCliOptions } from './create-command.js';
import type { PeerCliOptions } from './download-command.js';
import { jsonLine } from './events.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { checkRelativePaths } from './cwd.js';
import { printable } from './format.js';
import type { InfoCliOptions } from './info-command.js';
import { parseRate } from './rate.js';
import type { ByteStream } from './torrent-file.js';
import type { VerifyCliOptions } from './verify-command.js';
import { VERSION } from '../version.js';
import { ENCRYPTION_MODES } from '../peer/encryption-mode.js';
import { canonicalPeerIPv6, ipFamily } from '../tracker/compact.js';

export interface Out {
  write(s: string): unknown;
  /** Bytes written and not yet taken by the reader (a stream's; absent: none kept). */
  writableLength?: number;
}

export interface Err extends Out {
  isTTY?: boolean;
  columns?: number;
}

export interface CliIO {
  stdout: Out;
  stderr: Err;
  /** What `tdl download -` and `tdl info -` read the .torrent from (process.stdin if absent). */
  stdin?: ByteStream;
  /** Aborted on SIGINT/SIGTERM/SIGHUP or a closed stdout; the reason is a TdlError of kind 'interrupted'. */
  signal?: AbortSignal;
}

/** `verify` takes a .torrent only (it has no peers to fetch a magnet link's metadata from). */
const TORRENT_FILE_ARG =
  'a .torrent file, - to read it from stdin, or an http(s) URL to fetch it from';
const TORRENT_ARG =
  'a .torrent file, - to read it from stdin, an http(s) URL to fetch it from, or a magnet link';

/**
 * A number as a command line writes one: decimal digits, with a fraction when `fraction`
 * (`0.5`, `.5`, `2.`), surrounding blanks aside; NaN for anything else. `Number()` alone would
 * take an empty or blank value as 0 (`--port "$UNSET"` listening anywhere, `--seed-time ""`
 * ending the seeding at once), and hex, exponents or `Infinity` as numbers.
 */
export function decimal(v: string, fraction: boolean): number {
  const text = v.trim();
  const form = fraction ? /^(\d+(\.\d*)?|\.\d+)$/ : /^\d+$/;
  return form.test(text) ? Number(text) : NaN;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = decimal(v, false);
    if (!(n >= 1 && n <= 10_000)) {
      throw new InvalidArgumentError(`${name} must be a whole number from 1 to 10000`);
    }
    return n;
  };
}

function seconds(v: string): number {
  const n = decimal(v, true);
  if (!(n > 0 && n <= 86_400 * 7)) {
    throw new InvalidArgumentError(
      'must be a number of seconds greater than 0, at most 604800 (a week)',
    );
  }
  return n;
}

/**
 * A path, an address or a URL, never empty: `-o ""` would be the current folder, `--bind ""`
 * every address and `--tracker ""` no tracker, without a word (`-o "$UNSET"` in a script). Nor
 * holding U+FFFD, which is how Node reads a byte that is not UTF-8 in an argument: that path is
 * another one (a new folder named with the replacement character took the download, exit 0).
 */
function nonEmpty(v: string): string {
  if (v === '') throw new InvalidArgumentError('must not be empty');
  if (v.includes('\uFFFD')) {
    throw new InvalidArgumentError(
      'holds a byte that is not UTF-8 (shown as \uFFFD), which tdl cannot name: rename it',
    );
  }
  return v;
}

/**
 * An output path (`-o`): not empty, and not an option. `-o --peer HOST:PORT`, the path left out,
 * took `--peer` as the path and then said "too many arguments"; a path that starts with `-` is
 * written `./-name` (`-` alone is stdout).
 */
function outputPath(v: string): string {
  if (/^--?[A-Za-z]/.test(v)) {
    throw new InvalidArgumentError(
      `${JSON.stringify(v)} is an option, not a path: give -o its path first (a file named so is ./${v})`,
    );
  }
  return nonEmpty(v);
}

/**
 * A `<torrent>` argument: a magnet link or a URL pasted with white space around it (a copied
 * line, a trailing newline from `$(cat link.txt)` quoted) is taken without it. A file name is
 * taken as given: its spaces are its own.
 */
function torrentArg(v: string): string {
  const t = v.trim();
  return /^(magnet:|https?:\/\/)/i.test(t) ? t : nonEmpty(v);
}

function collectNonEmpty(v: string, prev: string[]): string[] {
  return [...prev, nonEmpty(v)];
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function portNumber(v: string): number {
  const n = decimal(v, false);
  if (!(n >= 0 && n <= 65535)) {
    throw new InvalidArgumentError('must be a port number from 0 to 65535 (0: any free port)');
  }
  return n;
}

function bindAddress(v: string): string {
  // `[::1]`, as IPv6 addresses are written beside a port (--peer, URLs), is taken as `::1`.
  const bracketed = /^\[([^\]]*)\]$/.exec(v.trim());
  const address = bracketed ? bracketed[1]! : v;
  if (ipFamily(nonEmpty(address)) === 0 || (bracketed && ipFamily(address) !== 6)) {
    throw new InvalidArgumentError(
      'must be an IP address of this machine (such as 192.168.1.20 or ::1), without a port',
    );
  }
  // In the form --peer takes: `::ffff:127.0.0.1` is 127.0.0.1 (of the IPv4 family then, as the
  // peers it may reach), `0::1` is `::1`.
  return ipFamily(address) === 6 ? canonicalPeerIPv6(address) : address;
}

function minutes(v: string): number {
  const n = decimal(v, true);
  if (!(n >= 0 && n <= 525_600)) {
    throw new InvalidArgumentError('must be a number of minutes, from 0 to 525600 (a year)');
  }
  return n;
}

function ratio(v: string): number {
  const n = decimal(v, true);
  if (!(n >= 0 && n <= 1_000_000)) {
    throw new InvalidArgumentError('must be a number (uploaded / size), from 0 to 1000000');
  }
  return n;
}

/** Options of every command that joins a swarm: listening, uploading, seeding. */
function peerOptions(cmd: Command): Command {
  return cmd
    .option(
      '--port <n>',
      'TCP port for incoming peers (default: first free of 6881-6889, else any; 0: any)',
      portNumber,
    )
    .option(
      '--bind <address>',
      'listen on this address only, and connect from it (default: all)',
      bindAddress,
    )
    .option('--no-listen', 'accept no incoming connection')
    .option(
      '--upload-slots <n>',
      'peers uploaded to at once (plus one optimistic)',
      positiveInt('--upload-slots'),
      4,
    )
    .option(
      '--max-upload-rate <rate>',
      'upload limit, like 500K or 2M (bytes per second)',
      parseRate,
    )
    .option(
      '--max-download-rate <rate>',
      'download limit, like 500K or 1.5M (bytes per second)',
      parseRate,
    )
    .addOption(
      new Option(
        '--encryption <mode>',
        'allow: plain handshakes, encrypted for peers that hang up on them; prefer: encrypted first; require: RC4 only',
      )
        .choices(ENCRYPTION_MODES)
        .default('allow'),
    )
    .option('--no-dht', 'find no peers through the DHT (it is never used for private torrents)')
    .option('--no-web-seeds', "don't download from the torrent's web seeds (url-list)")
    .addOption(
      new Option('--dht-bootstrap <host:port>', 'join the DHT through this node only (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .option(
      '--seed-time <minutes>',
      'stop seeding after this long (download: implies --seed; 0: no seeding)',
      minutes,
    )
    .option(
      '--seed-ratio <r>',
      'stop seeding once uploaded / size reaches this (download: implies --seed; 0: no seeding)',
      ratio,
    );
}

/** `tdl create`'s options as parsed: -o is checked in the action (see there). */
type CreateArgs = Omit<CreateCliOptions, 'output'> & { output?: string };

/** Run the CLI; resolves to the exit code. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  let exitCode: number = EXIT.ok;
  let json = false;
  // `download -o -`: stdout carries the file, so --json events (errors too) go to stderr.
  let eventsOnStderr = false;
  // `-o - -q` whose reader went away: exit 141 without a word, as a shell's SIGPIPE would.
  let quietPipe = false;
  // A refused command line whose --json events go to stderr gets its `error` event there and
  // no text (as any error of a stream: see reportError).
  const usageEvents = usageJson(argv);
  const program = new Command('tdl')
    .description('Download a torrent: a fast, safe, scriptable BitTorrent client.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Every message of tdl's starts with `tdl: `, the parser's too.
      outputError: (s, write) => {
        const text = `tdl: ${parserText(s)}`;
        if (usageEvents !== 'stderr') write(text);
      },
    })
    .showHelpAfterError(usageEvents === 'stderr' ? false : '(run with --help for usage)');

  const downloadCmd = program
    .command('download')
    .description(
      'download the torrent described by a .torrent file (or stdin, a URL, a magnet link)',
    )
    .argument('<torrent>', TORRENT_ARG, torrentArg)
    .option(
      '-o, --output <path>',
      'where to save: an existing folder, or the new file/folder name; - streams the file to stdout',
      outputPath,
    )
    .addOption(
      new Option(
        '--peer <host:port>',
        'connect to this peer instead of asking trackers and the DHT (a magnet link: as well as them; repeatable)',
      )
        .argParser(collect)
        .default([]),
    )
    .option(
      '--max-peers <n>',
      'connections at most (1 = one full seeder at a time)',
      positiveInt('--max-peers'),
      30,
    )
    .option('--timeout <seconds>', 'give up when no data arrives for this long', seconds, 120)
    .option(
      '--peer-timeout <seconds>',
      'how long a peer may take to handshake (--max-peers 1: also to show every piece and unchoke)',
      seconds,
      15,
    )
    .option('-q, --quiet', 'print nothing but errors (--json events still go out)')
    .option('--json', 'write newline-delimited JSON events to stdout')
    .option('--seed', 'go on seeding once the download is complete (see --seed-time, --seed-ratio)')
    .option(
      '--save-torrent <file>',
      'also write the torrent (for a magnet link, its fetched metadata) to FILE',
      nonEmpty,
    )
    .option('--no-resume', 'with -o -: keep no working copy for a later run, however it ends');
  peerOptions(selectionOptions(downloadCmd)).action(
    async (
      torrent: string,
      opts: DownloadCliOptions & PeerCliOptions & { seed?: boolean; saveTorrent?: string },
    ) => {
      json = Boolean(opts.json);
      eventsOnStderr = opts.output === '-';
      quietPipe = eventsOnStderr && Boolean(opts.quiet) && !json;
      checkRelativePaths([opts.output, ...(opts.saveTorrent ? [opts.saveTorrent] : [])]);
      exitCode = await (await import('./download-command.js')).runDownload(torrent, opts, io);
    },
  );

  const seedCmd = program
    .command('seed')
    .description(
      'serve data already on disk to other peers (checked first), until Ctrl-C or a limit',
    )
    .argument('<torrent>', TORRENT_ARG, torrentArg)
    .option('-o, --output <path>', 'where the data is (as given to download)', outputPath)
    .addOption(
      new Option(
        '--peer <host:port>',
        'connect to this peer instead of asking trackers and the DHT (a magnet link: as well as them; repeatable)',
      )
        .argParser(collect)
        .default([]),
    )
    .option('--max-peers <n>', 'connections at most', positiveInt('--max-peers'), 30)
    .option(
      '--timeout <seconds>',
      'a magnet link: give up when no metadata arrives for this long (seeding has no wait)',
      seconds,
      120,
    )
    .option('--peer-timeout <seconds>', 'how long a peer may take to handshake', seconds, 15)
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'write newline-delimited JSON events to stdout')
    // `tdl download … --seed` carried over: seed always seeds (commander would suggest --peer).
    .addOption(new Option('--seed').hideHelp());
  peerOptions(selectionOptions(seedCmd)).action(
    async (torrent: string, opts: DownloadCliOptions & PeerCliOptions) => {
      json = Boolean(opts.json);
      checkRelativePaths([opts.output]);
      exitCode = await (
        await import('./download-command.js')
      ).runDownload(torrent, opts, io, 'seed');
    },
  );

  program
    .command('info')
    .description(
      'show what a .torrent file (or a magnet link, once its metadata is fetched) contains',
    )
    .argument('<torrent>', TORRENT_ARG, torrentArg)
    .option('--json', 'print the information as JSON')
    .addOption(
      new Option(
        '--peer <host:port>',
        'magnet links: also ask this peer for the metadata (repeatable)',
      )
        .argParser(collect)
        .default([]),
    )
    .option(
      '--timeout <seconds>',
      'magnet links: give up when no metadata arrives for this long',
      seconds,
      120,
    )
    .option(
      '--save-torrent <file>',
      'also write the torrent (for a magnet link, its fetched metadata) to FILE',
      nonEmpty,
    )
    .option('--no-dht', 'magnet links: find no peers through the DHT')
    .addOption(
      new Option(
        '--dht-bootstrap <host:port>',
        'magnet links: join the DHT through this node only (repeatable)',
      )
        .argParser(collect)
        .default([]),
    )
    .option(
      '--bind <address>',
      'magnet links and URLs: make every connection from this address (default: any)',
      bindAddress,
    )
    .action(async (torrent: string, opts: InfoCliOptions) => {
      json = Boolean(opts.json);
      if (opts.saveTorrent) checkRelativePaths([opts.saveTorrent]);
      exitCode = await (await import('./info-command.js')).runInfo(torrent, opts, io);
    });

  const verifyCmd = program
    .command('verify')
    .description(
      'check the data on disk against the torrent and report how much is valid ' +
        '(exit 0: complete, 5: incomplete, 6: cannot read)',
    )
    .argument('<torrent>', TORRENT_FILE_ARG, torrentArg)
    .option('-o, --output <path>', 'where the data was saved (as given to download)', outputPath)
    .option('-q, --quiet', 'print nothing but errors: the exit code tells')
    .option('--json', 'write newline-delimited JSON events to stdout');
  selectionOptions(verifyCmd).action(async (torrent: string, opts: VerifyCliOptions) => {
    json = Boolean(opts.json);
    checkRelativePaths([opts.output]);
    exitCode = await (await import('./verify-command.js')).runVerify(torrent, opts, io);
  });

  program
    .command('create')
    .description('make a .torrent from a file or a folder; prints its info hash and magnet link')
    .argument('<file-or-folder>', 'what the torrent holds', nonEmpty)
    // Required, but checked in the action: the parser checks required options before arguments,
    // and `tdl create` alone would name -o before the input.
    .option('-o, --output <file.torrent>', 'where to write the torrent (- for stdout)', outputPath)
    .addOption(
      new Option('--tracker <url>', "tracker URL, one tier each (repeatable; 'A,B' = one tier)")
        .argParser(collectNonEmpty)
        .default([]),
    )
    .addOption(
      new Option('--web-seed <url>', 'web seed URL (BEP 19; repeatable)')
        .argParser(collectNonEmpty)
        .default([]),
    )
    .option('--piece-length <size>', 'auto, or a power of two: bytes, or like 256K, 4M', 'auto')
    .option('--private', 'mark the torrent private (no DHT or peer exchange)')
    .option('--comment <text>', 'a comment stored in the torrent')
    .option('--source <text>', 'info.source (changes the info hash; some trackers ask for it)')
    .option('--created-by <text>', 'the "created by" field (default: tdl/VERSION)')
    .option('--no-date', 'write no creation date (same input, byte-identical torrent)')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (input: string, given: CreateArgs, cmd: Command) => {
      const { output } = given;
      if (output === undefined) {
        cmd.error("error: required option '-o, --output <file.torrent>' not specified", {
          code: 'commander.missingMandatoryOptionValue',
          exitCode: EXIT.usage,
        });
      }
      const opts: CreateCliOptions = { ...given, output };
      checkRelativePaths([input, output]);
      exitCode = await (await import('./create-command.js')).runCreate(input, opts, io);
    });

  try {
    // `tdl help NAME` of no command: said as `tdl NAME` says it (the parser printed the whole
    // help with exit 2 and no word of what was wrong).
    const [first, asked] = argv;
    if (
      first === 'help' &&
      asked !== undefined &&
      !program.commands.some((c) => c.name() === asked)
    ) {
      program.error(`error: unknown command '${asked}'`, {
        code: 'commander.unknownCommand',
        exitCode: EXIT.usage,
      });
    }
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.ok;
      if (e.code === 'commander.help' || e.code === 'commander.executeSubCommandAsync') {
        return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      }
      // The parser said it on stderr; a script reading --json gets its `error` event too.
      if (usageEvents) {
        const message = parserText(e.message);
        const event = jsonLine({ event: 'error', kind: 'usage', exitCode: EXIT.usage, message });
        (usageEvents === 'stderr' ? io.stderr : io.stdout).write(event);
      }
      return EXIT.usage;
    }
    if (quietPipe && e instanceof StdoutClosedError) return exitCodeFor(e);
    return reportError(e, io, json, eventsOnStderr);
  }
}

/** The commands with a `--json` option. */
export const JSON_COMMANDS = new Set(['download', 'seed', 'info', 'verify']);

/**
 * Where a command line that the parser refused would have written its --json events: null
 * without `--json`; stderr when stdout carries the data (`-o -`, `--output -`, `--output=-`).
 * Words after `--` are arguments, not options.
 */
export function usageJson(argv: readonly string[]): 'stdout' | 'stderr' | null {
  const end = argv.indexOf('--');
  const words = end < 0 ? argv : argv.slice(0, end);
  // Only a command that has --json answers in JSON (`tdl create --json` is an unknown option).
  if (!words.includes('--json') || !JSON_COMMANDS.has(words[0] ?? '')) return null;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (
      w === '--output=-' ||
      w === '-o-' ||
      ((w === '-o' || w === '--output') && words[i + 1] === '-')
    ) {
      return 'stderr';
    }
  }
  return 'stdout';
}

/** `--select`, `--include`, `--exclude` (see storage/selection.ts). */
function selectionOptions(cmd: Command): Command {
  return cmd
    .option(
      '--select <list>',
      'only these files, by number as tdl info lists them: 1,3-5 (repeatable)',
      // `--select 1 --select 3` is `--select 1,3`, not the last one alone.
      (v: string, prev?: string) => (prev === undefined ? v : `${prev},${v}`),
    )
    .addOption(
      new Option('--include <glob>', 'only files whose path matches (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--exclude <glob>', 'leave out files whose path matches (repeatable)')
        .argParser(collect)
        .default([]),
    );
}

export interface SelectCliOptions {
  select?: string;
  include: string[];
  exclude: string[];
}

export interface DownloadCliOptions extends Partial<SelectCliOptions> {
  output?: string;
  peer: string[];
  maxPeers: number;
  timeout: number;
  peerTimeout: number;
  quiet?: boolean;
  json?: boolean;
  /** commander's `--no-resume` (download -o - only): false when given. */
  resume?: boolean;
}

/**
 * What Node's failure to get the current folder, when a relative path is resolved, means: a
 * folder that was deleted (ENOENT) or whose path is longer than the system allows (ERANGE).
 */
function cwdFailure(e: unknown): TdlError | null {
  const err = e as NodeJS.ErrnoException | null;
  if (e instanceof TdlError || err?.syscall !== 'uv_cwd') return null;
  if (err.code === 'ENOENT') {
    return new DiskError(
      'the current folder no longer exists (it was deleted or moved): cd to another one, or give absolute paths',
      { cause: e },
    );
  }
  if (err.code === 'ERANGE') {
    return new UsageError(
      "the current folder's path is longer than the system allows, so tdl cannot name what is in it: cd to a shorter one, or give absolute paths",
      { cause: e },
    );
  }
  return null;
}

/** The one place errors become messages and exit codes. */
export function reportError(
  thrown: unknown,
  io: CliIO,
  json: boolean,
  eventsOnStderr = false,
): number {
  const e = cwdFailure(thrown) ?? thrown;
  const code = exitCodeFor(e);
  const message =
    e instanceof TdlError ? e.message : `internal error: ${(e as Error)?.stack ?? String(e)}`;
  // Not even the `error` event goes into a file the download writes (`-o f --json >> f`).
  if (json && !(e instanceof EventsIntoDataError)) {
    const kind = e instanceof TdlError ? e.kind : 'internal';
    const event = {
      event: 'error',
      kind,
      exitCode: code,
      message: printable(message),
    };
    // With the events on stderr, the event is the message: one JSON object per line there.
    if (eventsOnStderr) {
      io.stderr.write(jsonLine(event));
      return code;
    }
    io.stdout.write(jsonLine(event));
  }
  io.stderr.write(`tdl: ${printable(message)}\n`);
  return code;
}

/**
 * A message of the option parser, without its `error: `. It joins its words and ours with a full
 * stop ("… is invalid. must not be empty"): a colon reads as one sentence.
 */
function parserText(s: string): string {
  return s
    .replace(/^error: /, '')
    .replace(/ is invalid( for argument '[^']*')?\. (?=[^A-Z])/, ' is invalid$1: ');
}
