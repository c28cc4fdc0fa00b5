/**
 * The output of one download as the client (client.ts) handles it around the swarm: the planned
 * paths, the storage opened on them, the resume and metadata files beside them, and what is done
 * to them once the data is all there (boundary pieces copied out of the parts file, final names,
 * BEP 47 attributes, the files that only served the download removed).
 */
import { rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { DiskError } from '../errors.js';
import { logger } from '../log.js';
import { fileList, type Metainfo } from '../metainfo/torrent.js';
import { applyFileAttributes } from '../storage/attributes.js';
import { removeResumeFiles, type ResumeWriter } from '../storage/checkpoint.js';
import { DiskStorage } from '../storage/disk.js';
import { lstatOrNull, makeFolders, toDiskError } from '../storage/fs-util.js';
import type { Layout } from '../storage/layout.js';
import { METADATA_SUFFIX, resumePath, withSuffix } from '../storage/names.js';
import { planOutput, type OutputPlan } from '../storage/output.js';
import { metadataThere } from '../storage/kept-metadata.js';
import { lockOutput, refuseFoldersInUse } from '../storage/lock.js';
import { partsPath } from '../storage/parts.js';
import type { Bitfield } from '../wire/bitfield.js';

const log = logger('tdl:storage');

export class OutputFiles {
  /** The resume file, and the copy of a magnet's metadata kept beside it. */
  readonly resumeFile: string;
  readonly metadataFile: string;

  private constructor(
    private readonly meta: Metainfo,
    readonly plan: OutputPlan,
    readonly storage: DiskStorage,
    /** Gives the output's lock back (see storage/lock.ts). */
    private readonly unlock: () => Promise<void>,
    /** The files selected (null: all). */
    private readonly selected: Uint8Array | null,
    /** The output is a stream's working copy (it leaves no file). */
    private readonly stream: boolean,
    /** Which of the files beside the output were there before this run (earlier runs'). */
    readonly before: { resume: boolean; parts: boolean; metadata: boolean },
    /** The first of the folders above the output that open created (undefined: none). */
    private readonly madeParent?: string,
  ) {
    this.resumeFile = resumePath(plan);
    this.metadataFile = withSuffix(plan.root, METADATA_SUFFIX);
  }

  /** Plan the output under `output` and open its storage (for writing when it `downloads`). */
  static async open(
    meta: Metainfo,
    layout: Layout,
    output: string | undefined,
    selected: Uint8Array | null,
    stream: boolean,
    /**
     * A run that downloads: it takes the output's lock, and its storage creates the folders at
     * open. Not `tdl seed`, which only reads the data until it has found it complete (it then
     * gives the files their final names and attributes, as any complete run).
     */
    downloads = true,
  ): Promise<OutputFiles> {
    // fileList does not read meta.files, which would make an object per file and keep them all.
    const plan = await planOutput(
      {
        name: meta.name,
        multiFile: meta.multiFile,
        infoHash: meta.infoHash,
        files: fileList(meta),
      },
      output,
      downloads ? 'write' : 'read',
    );
    // The folders above the output that are missing (the lock goes in the last one).
    let madeParent: string | undefined;
    if (downloads) {
      await refuseFoldersInUse(plan.parent);
      try {
        madeParent = await makeFolders(plan.parent);
      } catch (e) {
        throw toDiskError(e, `cannot create folder ${plan.parent}`);
      }
    }
    // Before anything is created or opened: a second tdl on this output stops here.
    const unlock = downloads ? await lockOutput(plan.root) : async () => {};
    // A seed only reads its data (read-only media, files of another user, a running program):
    // nothing is opened for writing (its final renames need no open file), a selection's side
    // file included. Bytes of selected files held only there are not put in place by a seed:
    // its data is then incomplete, as verify finds it, and tdl download finishes it.
    // What earlier runs left beside the output (after the lock: no other tdl changes it now).
    const there = async (f: string) => (await lstatOrNull(f)) !== null;
    /**
     * Whether something is at the resume file's place. A folder there would fail the first
     * checkpoint (a file cannot be renamed over it) after the data was checked and fetched for
     * nothing: a download stops at once (anything else there is replaced).
     */
    const resumeThere = async (f: string) => {
      const st = await lstatOrNull(f);
      if (downloads && st?.isDirectory()) {
        throw new DiskError(`${f} is a folder in the place of the resume file (move it away)`);
      }
      // Someone's link: never read through, and not tdl's to replace or remove (as the lock's).
      if (st?.isSymbolicLink()) {
        throw new DiskError(
          `${f} is a symbolic link in the place of the resume file: refusing to follow it (move it away)`,
        );
      }
      return st !== null;
    };
    let storage: DiskStorage;
    let before: OutputFiles['before'];
    try {
      const [resume, parts, metadata] = await Promise.all([
        resumeThere(resumePath(plan)),
        there(partsPath(plan)),
        metadataThere(withSuffix(plan.root, METADATA_SUFFIX)),
      ]);
      before = { resume, parts, metadata };
      storage = await DiskStorage.open(plan, layout, {
        mode: downloads ? 'write' : 'read',
        selected,
        partsFile: { path: partsPath(plan), infoHash: meta.infoHash },
        prepare: downloads,
      });
    } catch (e) {
      await unlock();
      await removeEmptyFolders(plan.parent, madeParent);
      throw e;
    }
    return new OutputFiles(meta, plan, storage, unlock, selected, stream, before, madeParent);
  }

  /**
   * After close, when the run wrote nothing (it failed before its first checkpoint): the folders
   * it created, the torrent's and those above the output, go again where they are still empty.
   */
  async removeMadeFolders(): Promise<void> {
    await this.storage.removeMadeFolders();
    await removeEmptyFolders(this.plan.parent, this.madeParent);
  }

  /**
   * `tdl seed`, which holds no lock while it serves: when giving its complete data the final
   * names would write (a working name to rename, a file to create, a side file to remove), the
   * output's lock for that while; else null. OutputInUseError when a running tdl holds it: a
   * download there owns its working files and resume file, whatever of them is complete.
   */
  async lockToFinish(): Promise<(() => Promise<void>) | null> {
    const { before } = this;
    const leftovers = before.resume || before.metadata || (!this.selected && before.parts);
    if (!leftovers && this.storage.allFinal) return null;
    return lockOutput(this.plan.root);
  }

  /** Close the storage and give the lock back. */
  async close(): Promise<void> {
    try {
      await this.storage.close();
    } finally {
      await this.unlock();
    }
  }

  /**
   * Bytes of boundary pieces that belong to files now selected but sit only in the parts file
   * (the selection grew): put in place before anything relies on those files.
   */
  async copyFromParts(have: Bitfield): Promise<void> {
    const { storage } = this;
    for (const p of storage.piecesToCopy(have)) {
      await storage.writeFromCopy(p, await storage.readPiece(p));
    }
  }

  /**
   * The data is complete and verified: exact sizes and final names (see DiskStorage.finalize),
   * then the BEP 47 attributes. Returns the files that were longer: cut, unless `keepLonger`.
   */
  async finalize(keepLonger = false): Promise<string[]> {
    const { cut } = await this.storage.finalize(keepLonger);
    await this.applyAttributes();
    return cut;
  }

  /**
   * The download is over and needs nothing more kept for a later run: the resume file (through
   * its writer when there is one), the metadata copy, and the parts file unless some files are
   * left out (a later, wider selection reads their boundary bytes from it).
   */
  async removeLeftovers(writer: ResumeWriter | null): Promise<void> {
    if (writer) await writer.remove();
    else await removeResumeFiles(this.resumeFile);
    if (!this.selected) await this.storage.parts?.remove();
    await this.removeMetadata();
  }

  /**
   * A parts file this run created that holds no piece goes (nothing in it to keep). One an
   * earlier run left stays, empty or not: it marks the output as this torrent's folder.
   */
  async removeEmptyParts(): Promise<void> {
    const parts = this.storage.parts;
    if (parts && parts.size === 0 && !this.before.parts) await parts.remove();
  }

  /** The magnet's metadata kept beside the resume file goes (best effort). */
  async removeMetadata(): Promise<void> {
    await rm(this.metadataFile, { force: true }).catch(() => {});
  }

  /**
   * BEP 47 `x` and `l` once the files are in place under their final names: with a partial
   * selection, `x` on the selected files only and no link (the files a link leads to may not be
   * there); nothing for a stream (it leaves no file).
   */
  private async applyAttributes(): Promise<void> {
    if (this.stream) return;
    const selected = this.selected;
    const r = await applyFileAttributes(
      this.plan,
      { multiFile: this.meta.multiFile, files: fileList(this.meta) },
      selected ? (i) => selected[i] === 1 : undefined,
    );
    if (r.executables + r.symlinks > 0) {
      log('%d files made executable, %d links', r.executables, r.symlinks);
    }
  }
}

/** rmdir `dir` and the folders above it up to `top` included, while they are empty. */
async function removeEmptyFolders(dir: string, top: string | undefined): Promise<void> {
  if (top === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    const removed = await rmdir(d).then(
      () => true,
      () => false,
    );
    if (!removed || d === top || path.dirname(d) === d) return;
  }
}
