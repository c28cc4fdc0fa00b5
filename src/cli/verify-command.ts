/**
 * `tdl verify <torrent> [-o path]`: re-hash what is on disk and say how much of the torrent is
 * there and valid. Read-only: nothing is created, renamed or written, the resume file included.
 *
 * Exit codes: 0 when the output is complete and ready (every piece valid, every file under its
 * final name at its exact size), 5 when it is not (missing or corrupt pieces, or a finished
 * download whose files still carry `.part`: running `tdl download` again finishes it without the
 * network), 6 when the data cannot be read.
 */
import { lstatSync, type Stats } from 'node:fs';
import path from 'node:path';
import { otherNameOnDisk, UNMAPPED_NOTE } from '../storage/fs-util.js';
import { begunPieces, copyIsRight } from '../storage/check.js';
import { hashPieces, isZeroPiece } from '../storage/hash-pieces.js';
import { checkLinks } from '../storage/attributes.js';
import { DiskStorage } from '../storage/disk.js';
import { Layout } from '../storage/layout.js';
import { fileList, fileOffsets, paddingFileCount } from '../metainfo/torrent.js';
import { TransferError, UsageError } from '../errors.js';
import { planOutput } from '../storage/output.js';
import { resumePath } from '../storage/names.js';
import { partsPath } from '../storage/parts.js';
import { resolveSelection, wantedPieces, type SelectOptions } from '../storage/selection.js';
import { EXIT } from './exit-codes.js';
import { jsonLine } from './events.js';
import {
  escapeControl,
  formatBytes,
  formatPartBytes,
  percentDown,
  printable,
  terminalColumns,
} from './format.js';
import type { CliIO } from './program.js';
import { checkLine, lookingLine } from './progress.js';
import { loadTorrent } from './torrent-file.js';

const REDRAW_MS = 200;
const JSON_PROGRESS_MS = 250;
/** Files listed in the text report before "... and N more". */
const MAX_FILES_LISTED = 20;

export interface VerifyCliOptions extends SelectOptions {
  output?: string;
  quiet?: boolean;
  json?: boolean;
}

export type FileState =
  | 'complete'
  | 'partial'
  | 'missing'
  | 'too-long'
  | 'not-final'
  /** A torrent link (BEP 47 `l`) whose place holds another link or a file. */
  | 'wrong-link';

/** A file of the report (`verified` event's `files`). */
interface ReportedFile {
  path: string;
  onDisk: string | null;
  length: number;
  valid: number;
  state: FileState;
  /** `missing`: what stands at its path is not a regular file (a folder, a FIFO, a device). */
  notAFile?: true;
}

export async function runVerify(file: string, opts: VerifyCliOptions, io: CliIO): Promise<number> {
  if (opts.output === '-') {
    // As for tdl seed: `-o -` is a download streamed to stdout, never a file named '-'.
    throw new UsageError(
      '-o - streams a download to stdout; tdl verify needs -o to name where the data is on disk',
    );
  }
  const meta = await loadTorrent(file, { stdin: io.stdin, signal: io.signal });
  const json = Boolean(opts.json);
  const tty = Boolean(io.stderr.isTTY) && !opts.quiet && !json;
  const emit = (o: Record<string, unknown>) => io.stdout.write(jsonLine(o));
  // Warnings about the .torrent itself (ignored trailing bytes, remapped names, bad seeds), as
  // download and info say them.
  const warn = (w: string) => {
    if (json) emit({ event: 'warning', message: printable(w) });
    else if (!opts.quiet) io.stderr.write(`tdl: warning: ${printable(w)}\n`);
  };
  for (const w of meta.warnings) warn(w);
  // meta.files is never read: it would make an object per file and keep them all.
  const list = fileList(meta);
  if (tty) {
    const files = list.length - paddingFileCount(meta);
    io.stderr.write(`\r\x1b[2K${lookingLine(files, meta.name, terminalColumns(io.stderr))}`);
  }
  const layout = new Layout({ starts: fileOffsets(meta) }, meta.pieceLength, meta.length);
  const unmatched: string[] = [];
  const opened = await (async () => {
    const plan = await planOutput(
      { name: meta.name, multiFile: meta.multiFile, infoHash: meta.infoHash, files: list },
      opts.output,
      'read',
    );
    // Said once the looking line is gone (a pattern that matches no file).
    const selected = resolveSelection(list, meta.name, meta.multiFile, opts, (w) =>
      unmatched.push(w),
    );
    const storage = await DiskStorage.open(plan, layout, {
      mode: 'read',
      selected,
      partsFile: { path: partsPath(plan), infoHash: meta.infoHash },
    });
    return { plan, selected, storage };
  })().catch((e: unknown) => {
    // The looking line goes before the message.
    if (tty) io.stderr.write('\r\x1b[2K');
    for (const w of unmatched) warn(w);
    throw e;
  });
  if (tty && unmatched.length > 0) io.stderr.write('\r\x1b[2K');
  for (const w of unmatched) warn(w);
  const { plan, selected, storage } = opened;
  const wanted = wantedPieces(layout, selected);
  const started = Date.now();

  let progress = { checked: 0, total: 0, valid: 0 };
  let timer: NodeJS.Timeout | null = null;
  const redraw = () => {
    const p = progress;
    if (tty) {
      io.stderr.write(
        `\r\x1b[2K${checkLine(p.checked, p.total, p.valid, meta.name, terminalColumns(io.stderr))}`,
      );
    }
    if (json) {
      emit({
        event: 'progress',
        checked: p.checked,
        total: p.total,
        valid: p.valid,
        percent: p.total > 0 ? Math.round((p.checked / p.total) * 1000) / 10 : 100,
      });
    }
  };

  try {
    // Pieces lying wholly in files that are not there, or past the end of those that are (a
    // download cut short), are missing: no need to read them. A piece of BEP 47 padding only is
    // zeros, never on disk: valid when hashed as zeros, unread.
    const stamps = await storage.stamps();
    const onDisk = (s: { fileIndex: number; fileOffset: number }) =>
      storage.existed(s.fileIndex) && (stamps[s.fileIndex]?.size ?? 0) > s.fileOffset;
    const pieces: number[] = [];
    const zeros: number[] = [];
    // With a selection, only the pieces of the selected files; boundary pieces are read with the
    // bytes of unselected files from the parts file.
    for (let p = 0; p < layout.pieceCount; p++) {
      if (!wanted.has(p)) continue;
      const spans = layout.spans(p);
      if (spans.every((s) => storage.isPadding(s.fileIndex))) {
        if (isZeroPiece(layout, meta.pieceHashes, p)) zeros.push(p);
      } else if (storage.parts?.has(p) || spans.some(onDisk)) {
        pieces.push(p);
      }
    }
    // In the files' bytes, as every size tdl shows: BEP 47 padding is not data.
    let toRead = 0;
    for (const p of pieces) toRead += storage.dataBytes(p);
    progress = { checked: 0, total: toRead, valid: 0 };
    if (tty || json) {
      redraw();
      timer = setInterval(redraw, tty ? REDRAW_MS : JSON_PROGRESS_MS);
      timer.unref();
    }
    const r = await hashPieces({
      storage,
      layout,
      pieceHashes: meta.pieceHashes,
      pieces,
      signal: io.signal,
      onProgress: (checked, total, valid) => {
        progress = { checked, total, valid };
      },
    });
    if (timer) clearInterval(timer);
    timer = null;
    // What was read holds only for files left as they were found: one removed while it was
    // read (its open handle still reads it), cut or written meanwhile (a download running
    // there) gives no report. Not verified complete: exit 5, as incomplete data.
    const change = await storage.firstChange(stamps);
    if (change !== null) {
      throw new TransferError(
        `${change} while it was being verified: no report, the data is not verified complete ` +
          '(run tdl verify again)',
      );
    }
    // Bytes that hashed right as zeros because they are not on disk (past a file's end, a file
    // not there): such a piece is missing, as a download would find it.
    for (const p of pieces) if (r.absent.has(p)) r.valid.clear(p);
    for (const p of zeros) r.valid.set(p);
    // The last progress counts what those corrections leave valid, in bytes as every other one.
    let validRead = 0;
    for (const p of pieces) if (r.valid.has(p)) validRead += storage.dataBytes(p);
    progress = { ...progress, valid: validRead };
    if (tty || json) redraw();
    if (tty) io.stderr.write('\r\x1b[2K');

    // Per file: valid bytes, and whether it is complete and ready under its final name.
    const validOf = new Float64Array(list.length);
    for (let p = 0; p < layout.pieceCount; p++) {
      if (!r.valid.has(p)) continue;
      for (const s of layout.spans(p)) validOf[s.fileIndex]! += s.length;
    }
    // BEP 47 padding files are never on disk: they are not reported.
    const files = storage.files.flatMap<ReportedFile>((f, i) => {
      if (f.padding || !f.selected) return [];
      const size = stamps[i]?.size ?? 0;
      // Too long first, whatever of it is valid: it must be cut before a download takes the
      // folder (its `valid` says how much of it holds the torrent's bytes).
      const state: FileState = !f.existed
        ? 'missing'
        : size > f.length
          ? 'too-long'
          : validOf[i]! < f.length
            ? 'partial'
            : f.current !== f.path
              ? 'not-final'
              : 'complete';
      return [
        {
          path: path.relative(plan.parent, f.path),
          onDisk: f.current,
          length: f.length,
          valid: validOf[i]!,
          state,
          ...(f.notAFile ? { notAFile: true as const } : {}),
        },
      ];
    });
    // The torrent's links (BEP 47 `l`, whole torrents only: a selection makes none): each is a
    // file of the report, of no length, complete when it is in place (as seed would find it).
    if (!selected) {
      for (const l of await checkLinks(plan, { multiFile: meta.multiFile, files: list })) {
        const there = l.found.state !== 'missing';
        files.push({
          path: path.relative(plan.parent, l.path),
          onDisk: there ? l.path : null,
          length: 0,
          valid: 0,
          state:
            l.found.state === 'in-place'
              ? 'complete'
              : l.found.state === 'missing'
                ? 'missing'
                : 'wrong-link',
        });
      }
    }
    // A piece some of whose bytes are not on disk (past the end of a file cut short, in a file
    // not there) is missing, whatever the bytes that are there hold (README). So is a boundary
    // piece whose bytes in a file not selected are nowhere (no copy in the parts file, or a
    // damaged one, and the file not on disk): it cannot be judged.
    // A piece an interrupted download had begun to write (a crash, a full disk) holds its own
    // unfinished write, which the download counts as missing too (README, "Resuming").
    const begun = await begunPieces(resumePath(plan), meta, layout.fileCount);
    let unjudged = 0;
    for (const p of pieces) {
      if (!r.nonZeroInvalid.has(p)) continue;
      if (r.absent.has(p) || begun.has(p)) {
        unjudged++;
        continue;
      }
      // With a copy: the piece is wrong in the selected files when the copy is right; a copy
      // found damaged is not used (README), and the piece cannot be judged without it.
      if (storage.parts?.has(p)) {
        if (!(await copyIsRight(storage, meta.pieceHashes, p))) unjudged++;
        continue;
      }
      const blind = layout
        .spans(p)
        .some(
          (s) =>
            !storage.isSelected(s.fileIndex) &&
            !storage.isPadding(s.fileIndex) &&
            !entryAt(storage.finalPath(s.fileIndex))?.isFile(),
        );
      if (blind) unjudged++;
    }
    const corrupt = r.nonZeroInvalid.count - unjudged;
    const missing = wanted.count - r.valid.count - corrupt;
    const dataComplete = r.valid.count === wanted.count;
    // The files' bytes (the selected files' with a selection): BEP 47 padding is not data.
    const size = files.reduce((n, f) => n + f.length, 0);
    const validBytes = files.reduce((n, f) => n + f.valid, 0);
    const selection = selected
      ? {
          selectedFiles: files.length,
          selectedSize: size,
          files: list.length - paddingFileCount(meta),
        }
      : null;
    const ready = dataComplete && files.every((f) => f.state === 'complete');
    const code = ready ? EXIT.ok : EXIT.transfer;

    if (json) {
      emit({
        event: 'verified',
        name: meta.name,
        infoHash: meta.infoHashHex,
        output: plan.root,
        complete: ready,
        dataComplete,
        exitCode: code,
        size,
        valid: validBytes,
        percent: percentDown(validBytes, size),
        ...(selection ? { selectedFiles: selection.selectedFiles } : {}),
        pieces: wanted.count,
        piecesValid: r.valid.count,
        piecesMissing: missing,
        piecesCorrupt: corrupt,
        readBytes: r.hashedBytes,
        elapsedMs: Date.now() - started,
        files,
      });
    } else if (!opts.quiet) {
      const pct = percentDown(validBytes, size).toFixed(1);
      const lines = [
        `name:     ${escapeControl(meta.name)}`,
        `output:   ${escapeControl(plan.root)}`,
        ...(selection
          ? [
              `selected: ${selection.selectedFiles} of ${selection.files} files (${formatBytes(size)})`,
            ]
          : []),
        `valid:    ${formatPartBytes(validBytes, size)} of ${formatBytes(size)} (${pct}%), ` +
          `${r.valid.count} of ${wanted.count} pieces`,
        `missing:  ${missing} piece${missing === 1 ? '' : 's'}`,
        `corrupt:  ${corrupt} piece${corrupt === 1 ? '' : 's'}`,
      ];
      const bad = files.filter((f) => f.state !== 'complete');
      lines.push(`files:    ${files.length - bad.length} of ${files.length} complete`);
      const listed = bad.slice(0, MAX_FILES_LISTED);
      // A missing file there under another name: in another Unicode form, or under the raw
      // bytes of a name that is not UTF-8 (the folder the torrent was made from, say).
      const otherNames = await Promise.all(
        listed.map((f) =>
          f.state === 'missing' && !f.notAFile
            ? otherNameOnDisk(plan.parent, path.join(plan.parent, f.path))
            : null,
        ),
      );
      for (const [k, f] of listed.entries()) {
        const what =
          f.state === 'partial'
            ? `partial    ${formatPartBytes(f.valid, f.length)} of ${formatBytes(f.length)}`
            : f.state === 'missing'
              ? 'missing   '
              : f.state === 'too-long'
                ? 'too long  '
                : f.state === 'wrong-link'
                  ? "not the torrent's link"
                  : 'complete, still named .part';
        const other = otherNames[k];
        const note = f.notAFile
          ? ' (not a file: a folder, FIFO or device is there)'
          : f.state === 'too-long'
            ? ` (${f.length} bytes in the torrent` +
              (f.valid < f.length ? `, ${formatPartBytes(f.valid, f.length)} of them valid)` : ')')
            : other && 'nfd' in other
              ? ` (${escapeControl(other.nfd)} is there: the same name in another Unicode form; tdl names files in NFC, rename it)`
              : other
                ? ` (${UNMAPPED_NOTE})`
                : '';
        lines.push(`  ${what}  ${escapeControl(f.path)}${note}`);
      }
      if (bad.length > MAX_FILES_LISTED) {
        lines.push(`  ... and ${bad.length - MAX_FILES_LISTED} more`);
      }
      // A `.part` beside a file of the same name (left by a download finished some other way)
      // is what a download resumes, so it is what is read: say so, or a complete file there
      // seems reported as partial.
      const both = storage.shadowedFiles();
      for (const i of both.slice(0, MAX_FILES_LISTED)) {
        const fin = path.relative(plan.parent, storage.finalPath(i));
        const part = path.relative(plan.parent, storage.partPath(i));
        lines.push(
          `note:     ${escapeControl(part)} was read, not ${escapeControl(fin)} beside it ` +
            '(delete the one you do not want)',
        );
      }
      if (both.length > MAX_FILES_LISTED) {
        lines.push(`note:     ... and ${both.length - MAX_FILES_LISTED} more such files`);
      }
      // The torrent's folder not there at all: most likely `-o` names another place than the
      // download's (as tdl seed says, where it is an error).
      if (meta.multiFile && !entryAt(plan.root)) {
        lines.push(
          `note:     ${escapeControl(plan.root)} does not exist: ` +
            '-o names where the data is, as given to tdl download',
        );
      }
      lines.push(`result:   ${resultText(ready, dataComplete, files)}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return code;
  } catch (e) {
    if (timer) clearInterval(timer);
    if (tty) io.stderr.write('\r\x1b[2K');
    throw e;
  } finally {
    await storage.close();
  }
}

/**
 * `s` as one word for a shell: as it is when nothing in it is special, else single-quoted; with
 * a control character, bash's `$'…'` with that character escaped (a raw newline or escape
 * sequence is not printed, and the command still names the file).
 */
export function shellWord(s: string): string {
  if (/^[\w./,:+@%=-]+$/.test(s)) return s;
  if (escapeControl(s) === s) return `'${s.replace(/'/g, `'\\''`)}'`;
  return `$'${escapeControl(s.replace(/[\\']/g, (c) => `\\${c}`))}'`;
}

/** A regular file is at `p` (not through a link at its last component). */
/** What is at `p` (a link not followed), or undefined when nothing is or it cannot be seen. */
function entryAt(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** The text report's last line: what the verdict is, and what to do about it. */
function resultText(ready: boolean, dataComplete: boolean, files: ReportedFile[]): string {
  if (ready) return 'complete';
  const long = files.filter((f) => f.state === 'too-long');
  const tooLong = long.length;
  // One file: the very command (its path as on disk, quoted for a shell).
  const one = long[0]?.onDisk;
  const cut =
    tooLong === 1
      ? `cut the file that is too long to its size in the torrent (${
          one
            ? `truncate -s ${long[0]!.length} ${shellWord(path.resolve(one))}`
            : 'truncate -s SIZE FILE'
        })`
      : `cut the ${tooLong} files that are too long to their sizes in the torrent (truncate -s SIZE FILE)`;
  if (!dataComplete)
    return tooLong > 0 ? `incomplete: ${cut}, then run tdl download again` : 'incomplete';
  const unfinished = 'all data valid, not finished';
  // Something else where a link of the torrent goes: a download would refuse to replace it.
  const wrongLinks = files.filter((f) => f.state === 'wrong-link').length;
  if (wrongLinks > 0) {
    const links = `link${wrongLinks === 1 ? '' : 's'}`;
    return `${unfinished}: remove what is in the place of the torrent's ${links}, then run tdl download again`;
  }
  // A download takes a folder whose files are longer for someone else's: it would start again
  // one level down. Cut to size, they are the torrent's (and complete, if nothing else is left).
  if (tooLong > 0) {
    const then = files.some((f) => f.state !== 'complete' && f.state !== 'too-long')
      ? ', then run tdl download again'
      : '';
    return `${unfinished}: ${cut}${then}`;
  }
  return `${unfinished}: run tdl download again to finish it`;
}
