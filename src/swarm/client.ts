/**
 * One download from parsed metainfo to files on disk: plans the output, opens storage, checks
 * what is already there (resume file, re-hash), picks the peer source (the trackers, or the peers
 * given by hand), runs the orchestrator while checkpointing the resume file, and finally gives
 * the files their final names. The CLI calls this and only renders what it reports.
 *
 * Safety rules (docs/DESIGN.md, "Resume and crash safety"):
 * - while the torrent is incomplete its files carry a `.part` suffix and a resume file sits next
 *   to the output; only a fully verified torrent gets final names, and then the resume file goes;
 * - a piece is recorded in the resume file only after its data was written and synced;
 * - existing data that does not match is replaced piece by piece, each only once a verified
 *   piece is there to replace it, and the count is reported (`piecesReplaced`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { logger } from '../log.js';
import type { Dht } from '../dht/dht.js';
import { DhtPeerSource } from '../dht/peer-source.js';
import { DiskError, NoPeersError, TransferError } from '../errors.js';
import { fileList, fileOffsets, isPaddingFile, type Metainfo } from '../metainfo/torrent.js';
import type { EncryptionMode, PeerConnection } from '../peer/connection.js';
import { makePeerId } from '../peer/peer-id.js';
import { startupCheck, type StartupCheck } from '../storage/check.js';
import type { ProgressFn } from '../storage/hash-pieces.js';
import { checkLinks } from '../storage/attributes.js';
import { removeResumeFiles, ResumeWriter } from '../storage/checkpoint.js';
import { OutputInUseError } from '../storage/lock.js';
import { otherNameOnDisk, replaceFile, UNMAPPED_NOTE } from '../storage/fs-util.js';
import { Layout } from '../storage/layout.js';
import type { OutputPlan } from '../storage/output.js';
import { selectsEveryFile, wantedPieces } from '../storage/selection.js';
import { StreamOut, windowPieces, type ByteSink } from '../storage/stream-out.js';
import { Announcer, requireUsableTracker } from '../tracker/announcer.js';
import { webSeedOtherFamily } from './web-seed-feed.js';
import { preloadHttpClient } from '../tracker/http.js';
import type { PeerAddress } from '../tracker/types.js';
import { Bitfield } from '../wire/bitfield.js';
import type { DownloadOptions, DownloadStats } from './download-api.js';
import { Checkpointing } from './checkpointing.js';
import { Download, SEED_END_DRAIN_MS } from './download.js';
import { Listener, type ListenOptions } from './listener.js';
import { OutputFiles } from './output-files.js';
import { farPeers, farPeersError, namePeers } from './peer-pool.js';
import { dataBytesOf, piecePadding } from './padding.js';
import type { MagnetHandoff } from './magnet.js';

const log = logger('tdl:resume');

export interface SeedLimits {
  /** Stop seeding after this long (ms); undefined = until interrupted. */
  timeMs?: number;
  /** Stop once uploaded / size reaches this. */
  ratio?: number;
}

export interface ClientOptions {
  meta: Metainfo;
  output?: string;
  /** Known peers: when given, trackers are not asked (unless `trackersToo`). */
  peers?: PeerAddress[];
  /** A magnet link's own peers (`x.pe`): known peers, labelled `magnet`. */
  magnetPeers?: PeerAddress[];
  trackersToo?: boolean;
  /**
   * The files to download, one flag per torrent file (see storage/selection.ts); null or absent:
   * all. Files not selected are never created; pieces outside the selection are not fetched.
   */
  selected?: Uint8Array | null;
  /** The .torrent bytes of metadata fetched from peers: kept beside the resume file. */
  torrentBytes?: Buffer;
  /**
   * A magnet link's metadata phase: its peer id, listener, announce session and connections are
   * taken over (not dialled and announced again). Closed here however the download ends.
   */
  handoff?: MagnetHandoff | null;
  /** Download from the torrent's web seeds (`url-list`, BEP 19); default true. */
  webSeeds?: boolean;
  /**
   * The DHT, for peers of torrents that are not private (null or absent: none); it may still be
   * starting: it is awaited only once the output is set up and the first announce sent.
   */
  dht?: Dht | Promise<Dht | null> | null;
  maxPeers?: number;
  peerTimeoutMs?: number;
  stallTimeoutMs?: number;
  /** Finer timeouts, for tests (see DownloadOptions). */
  timeouts?: DownloadOptions['timeouts'];
  signal?: AbortSignal;
  /** Where to listen for incoming peers; false: nowhere. */
  listen?: ListenOptions | false;
  uploadSlots?: number;
  maxUploadRate?: number;
  maxDownloadRate?: number;
  /** `--encryption` (default allow): our connections, and which incoming ones are accepted. */
  encryption?: EncryptionMode;
  /** Outgoing connections (peers, trackers, web seeds) are made from this address (`--bind`). */
  localAddress?: string;
  /** Go on seeding once complete, within these limits (`download --seed`, `seed`). */
  seed?: SeedLimits;
  /** `tdl seed`: the data must already be complete. */
  seedOnly?: boolean;
  /** Progress of the start-up check, while existing data is re-hashed. */
  onCheck?: ProgressFn;
  /** Called once the output is planned and checked and the download is about to start. */
  onStart?: (download: Download, plan: OutputPlan, info: { port: number }) => void;
  /**
   * Called when the download's figures end (every piece written, or a stream's reader has the
   * last byte), before the files get their final names and the trackers hear `completed`: the
   * result's stats are those of this moment, its `uploaded` counting on to the run's end.
   */
  onFiguresEnd?: (download: Download, atEnd: DownloadStats) => void;
  /**
   * Called when a download that does not seed stays a while for the peers taking blocks from it:
   * `pieces` of its pieces are on no connected peer (see handOver).
   */
  onHandOver?: (pieces: number) => void;
  /** Called when seeding starts (the data is complete and has its final names). */
  onSeeding?: (download: Download, atComplete: DownloadStats) => void;
  /**
   * `tdl download -o -`: write file `fileIndex` to `out`, in order, as its pieces reach the disk
   * (pieces just ahead of it are fetched first). The download completes only once its last
   * byte is flushed; a failed write (EPIPE) ends it like an interrupt.
   */
  stream?: { fileIndex: number; out: ByteSink };
}

export interface ClientResult {
  stats: DownloadStats;
  plan: OutputPlan;
  /** What the start-up check found and how long it took. */
  check: Omit<StartupCheck, 'have' | 'mismatched'>;
  /** The data was complete before this run. */
  wasComplete: boolean;
}

export async function download(o: ClientOptions): Promise<ClientResult> {
  const { meta } = o;
  const { peers, known, useTrackers, dht, webSeeds, unreachable } = peerSources(o);
  // A plain download with no way to peers may find its data complete (a rerun, a script that
  // runs it until it succeeds): that refusal waits for the start-up check. Seeding needs peers
  // whatever the data.
  if (unreachable && (o.seedOnly || o.seed !== undefined)) await refuse(unreachable, o);
  if (useTrackers) preloadHttpClient(meta.announceList.flat());
  // fileOffsets does not read meta.files, which would make an object per file and keep them all.
  const layout = new Layout({ starts: fileOffsets(meta) }, meta.pieceLength, meta.length);
  // A selection of every file is no selection: the torrent is then complete when it is (the
  // trackers hear `completed`, the side file is removed, attributes are applied).
  const selected =
    o.selected && !selectsEveryFile(o.selected, (i) => isPaddingFile(meta, i)) ? o.selected : null;
  const out = await OutputFiles.open(
    meta,
    layout,
    o.output,
    selected,
    o.stream !== undefined,
    o.seedOnly !== true,
  );
  const { plan, storage, resumeFile, metadataFile } = out;
  const wanted = wantedPieces(layout, selected);
  // Found once (it looks at every file): the sizes below and the download count data bytes.
  const padding = piecePadding(meta, layout);
  // Our own signal: the caller's interrupt, or a fault found by a checkpoint, ends the download.
  const ctl = new AbortController();
  const forward = () => ctl.abort(o.signal?.reason);
  if (o.signal?.aborted) forward();
  else o.signal?.addEventListener('abort', forward, { once: true });
  let writer: ResumeWriter | null = null;
  let checkpoints: Checkpointing | null = null;
  let listener: Listener | null = null;
  let tracker: Announcer | undefined;
  /** The first announce's peers and warnings, held until the download starts. */
  let early: EarlySource | null = null;
  let dl: Download | null = null;
  let dhtSource: DhtPeerSource | null = null;
  let failed = false;
  /** How long the connections may take to end (longer once a seed limit ended the run). */
  let drainMs: number | undefined;
  /** Bytes of data the start-up check found valid (-1: it did not run). */
  let found = -1;
  const win = windowPieces(meta.pieceLength);
  const streamOut = o.stream
    ? new StreamOut({
        layout,
        file: layout.file(o.stream.fileIndex),
        read: (index, begin, length, into) => storage.readBlock(index, begin, length, into),
        out: o.stream.out,
        onCursor: (piece) => dl?.setPriorityWindow(piece, win),
        onStall: (piece) => dl?.hurry(piece),
      })
    : null;
  // A stream that cannot go on (its reader went away) ends the download.
  void streamOut?.done.catch((e: unknown) => ctl.abort(e));
  try {
    // A seed's --port that is taken fails now, not after hashing all of the data (a download
    // whose data turns out complete would not listen at all: it finds out after the check).
    if (o.listen && !o.handoff && (o.seedOnly || o.seed !== undefined)) {
      await Listener.probe(o.listen);
    }
    const check = await startupCheck({
      storage,
      layout,
      torrent: meta,
      resumeFile,
      onProgress: o.onCheck,
      signal: ctl.signal,
    });
    found = dataBytesOf(layout, padding, check.have);
    let complete = true;
    for (let p = 0; p < layout.pieceCount && complete; p++) {
      if (wanted.has(p) && !check.have.has(p)) complete = false;
    }
    const checkInfo = {
      trustedPieces: check.trustedPieces,
      hashedPieces: check.hashedPieces,
      hashedBytes: check.hashedBytes,
      resume: check.resume,
      reason: check.reason,
      ms: check.ms,
    };
    if (o.seedOnly && !complete) {
      // No file of the torrent there at all is a mistyped -o more often than a download to finish.
      let found = check.have.count > 0;
      for (let i = 0; i < storage.fileCount && !found; i++) found = storage.existed(i);
      // A `.part` beside a file of the same name is what is read: a complete file there would
      // otherwise seem refused as incomplete.
      const both = storage.shadowedFiles()[0];
      const shadowNote =
        both === undefined
          ? ''
          : ` (${storage.partPath(both)} was read, not ${storage.finalPath(both)} beside it: delete the one you do not want)`;
      // A file there under another name (its own in another Unicode form, NFD; the raw bytes of
      // one that is not UTF-8) reads as missing, and a download would write a second copy beside
      // it: said (looked for among the first missing).
      let formNote = '';
      for (let i = 0, looked = 0; i < storage.fileCount && looked < 20 && !formNote; i++) {
        if (storage.existed(i) || storage.isPadding(i) || !storage.isSelected(i)) continue;
        looked++;
        const file = storage.finalPath(i);
        const other = await otherNameOnDisk(plan.parent, file);
        if (other && 'nfd' in other) {
          formNote = ` (${other.nfd} is there for ${file}: the same name in another Unicode form; tdl names files in NFC, rename it)`;
        } else if (other) formNote = ` (${file}: ${UNMAPPED_NOTE})`;
      }
      throw new TransferError(
        (found
          ? `the data under ${plan.root} is incomplete (${check.have.countBoth(wanted)} of ${wanted.count} pieces valid): finish it with tdl download first${!selected && storage.fileCount > 1 ? ', or seed the files that are complete with --select (tdl verify lists them)' : ''}${shadowNote}`
          : selected
            ? `none of the selected files of this torrent is at ${plan.root}: -o names where the data is, as given to tdl download, and the selection the files it holds`
            : `no file of this torrent is at ${plan.root}: -o names where the data is, as given to tdl download`) +
          formNote,
      );
    }
    if (o.seedOnly && !selected) {
      // Every piece is valid, but a link of the torrent's (BEP 47 `l`) leads elsewhere: the data
      // is not the torrent as it should be (verify calls it wrong-link), and seed replaces
      // nothing of the user's.
      for (const l of await checkLinks(plan, {
        multiFile: meta.multiFile,
        files: fileList(meta),
      })) {
        // Missing, or a placeholder (an empty file): made by the finish, as for any complete run.
        if (l.found.state !== 'other') continue;
        const to = l.found.to === undefined ? 'is not a symbolic link' : `leads to ${l.found.to}`;
        throw new TransferError(
          `the data under ${plan.root} is incomplete: ${l.path} ${to}, not to the torrent's ` +
            `${path.relative(path.dirname(l.path), l.target)}: put the torrent's link there ` +
            '(or remove it: it is then made)',
        );
      }
    }
    if (o.seedOnly && storage.piecesToCopy(check.have).length > 0) {
      // Bytes of selected files held only in the selection's side file (the selection grew):
      // putting them in place writes the files, which a seed does not.
      throw new TransferError(
        `the data under ${plan.root} is incomplete: some bytes of the selected files are only ` +
          `in ${storage.parts?.file ?? 'the side file'}: finish it with tdl download (no network needed)`,
      );
    }
    if (o.seedOnly) {
      // Every piece is valid, read from a `.part` beside a file of the same name: finishing would
      // rename it over that file, which may be the user's own. seed only reads; a download
      // does this (and says so), and verify calls such data incomplete.
      const both = storage.shadowedFiles();
      if (both.length > 0) {
        const i = both[0]!;
        const more = both.length > 1 ? ` (and ${both.length - 1} more such files)` : '';
        throw new TransferError(
          `the data under ${plan.root} is valid but not finished: ${storage.partPath(i)} was ` +
            `read, and finishing would replace ${storage.finalPath(i)} beside it${more}: delete ` +
            'the one you do not want, or finish it with tdl download (no network needed)',
        );
      }
    }
    const seeding = o.seed !== undefined || o.seedOnly === true;
    if (unreachable && !complete) await refuse(unreachable, o);
    if (complete && !seeding) {
      // Nothing to fetch and nothing to serve: give the files their final names and stop.
      const idle = new Download({
        meta,
        layout,
        storage,
        peerId: makePeerId(),
        have: check.have,
        wanted: selected ? wanted : undefined,
        padding,
      });
      o.onStart?.(idle, plan, { port: 0 });
      if (plan.lookalike) idle.emit('warning', lookalikeWarning(plan.lookalike, plan.root));
      if (check.resume === 'ignored') idle.emit('warning', resumeIgnored(resumeFile, check.reason));
      await out.copyFromParts(check.have);
      if (streamOut) {
        // Streamed from the working copy, which the command removes next: nothing to keep.
        streamOut.start(check.have);
        await untilAborted(streamOut.done, ctl.signal);
        storage.discardData();
      } else {
        await storage.sync();
        for (const p of await out.finalize()) idle.emit('warning', cutWarning(p));
      }
      await out.removeLeftovers(null);
      const stats = idleStats(
        dataBytesOf(layout, padding, selected ? wanted : null),
        layout.pieceCount,
        selected ? check.have.countBoth(wanted) : check.have.count,
        // A stream of the working copy takes seconds, which its `progress` events counted;
        // anything else did nothing worth a time.
        streamOut ? idle.stats().elapsedMs : 0,
      );
      return { stats, plan, check: checkInfo, wasComplete: true };
    }
    // Listening and the first announce start before the first checkpoint is written: the
    // tracker's answer is on its way while the resume file is synced (docs/DESIGN.md, "Start-up").
    const peerId = o.handoff?.peerId ?? makePeerId();
    if (o.handoff) {
      // Listening since the metadata phase (null with --no-listen).
      listener = o.handoff.takeListener();
    } else if (o.listen !== false) {
      listener = await listen(o, peerId, layout.pieceCount);
    }
    const port = listener?.port ?? 0;
    if (useTrackers) {
      // `left` is what the whole torrent still lacks, as libtorrent and Transmission count it:
      // with a selection complete, tdl is not a seed, and says so (a tracker takes left=0 for one).
      const leftAtStart =
        dataBytesOf(layout, padding, null) - dataBytesOf(layout, padding, check.have);
      ({ tracker, early } = announce(o, peerId, port, listener, () => {
        const s = dl?.stats();
        return {
          uploaded: s?.uploaded ?? 0,
          downloaded: s?.downloaded ?? 0,
          left: Math.max(0, leftAtStart - (s?.downloaded ?? 0)),
        };
      }));
    }
    // The first checkpoint saves what the check found. The download starts beside it: peers
    // are dialled and unchoke us while it is written, but no block is asked for before it is
    // (`ready`); if it cannot be written (folder not writable, disk full), the download stops
    // with its error having fetched nothing.
    // Boundary pieces to copy from the parts file (the selection grew) are served from the files
    // once copied: then peers wait for it all, as before. Until they are written, no checkpoint
    // says the files hold them: one that did, with the parts file deleted since (as the README
    // allows), had a later start trust a file that held other bytes there.
    const toCopy = storage.piecesToCopy(check.have);
    const copying = toCopy.length > 0;
    if (!complete) {
      const recorded = new Bitfield(layout.pieceCount, check.have.toBuffer());
      for (const p of toCopy) recorded.clear(p);
      writer = new ResumeWriter(resumeFile, meta, storage, recorded);
    }
    const w = writer;
    const ready = (async () => {
      if (w) {
        await w.checkpoint();
        // Replaced, never written through (a link there points anywhere).
        if (o.torrentBytes) await replaceFile(metadataFile, o.torrentBytes).catch(() => {});
        storage.setBeforeWrite((index) => w.intent(index));
      }
      await out.copyFromParts(check.have);
      for (const p of toCopy) w?.markWritten(p);
    })();
    // Its failure is the download's (run() rejects with it).
    ready.catch(() => {});
    if (copying) await ready;

    const node = dht ? await dht : null;
    if (node) {
      if (meta.nodes.length > 0) node.addContacts(meta.nodes);
      dhtSource = new DhtPeerSource(node, meta.infoHash, { announcePort: port || undefined });
    }
    dl = new Download({
      meta,
      layout,
      storage,
      peerId,
      // The orchestrator marks pieces in the bitfield it is given: hand it a copy.
      have: new Bitfield(layout.pieceCount, check.have.toBuffer()),
      wanted: selected ? wanted : undefined,
      padding,
      replacing: check.mismatched,
      peers,
      magnetPeers: o.magnetPeers,
      tracker,
      sources: dhtSource
        ? [{ source: dhtSource, origin: 'dht', quiet: useTrackers || known > 0 }]
        : [],
      dhtStats:
        node && dhtSource
          ? () => ({ nodes: node.nodeCount(), peers: dhtSource!.peersFound() })
          : undefined,
      listener,
      handoff: o.handoff ?? undefined,
      webSeeds,
      maxPeers: o.maxPeers,
      seeds: o.seed !== undefined || o.seedOnly === true,
      peerTimeoutMs: o.peerTimeoutMs,
      stallTimeoutMs: o.stallTimeoutMs,
      timeouts: o.timeouts,
      uploadSlots: o.uploadSlots,
      maxUploadRate: o.maxUploadRate,
      maxDownloadRate: o.maxDownloadRate,
      encryption: o.encryption,
      localAddress: o.localAddress,
      signal: ctl.signal,
      // The stream writes verified pieces from memory when it can (else reads them back).
      tap: streamOut ? (index, data, room) => streamOut.take(index, data, room) : undefined,
      ready,
    });
    const d = dl;

    // Once every piece is written the completion path below takes over: it syncs and writes the
    // complete checkpoint itself, or for a stream none at all.
    checkpoints = writer
      ? new Checkpointing({
          writer,
          download: d,
          syncAhead: () => storage.syncAhead(),
          // A stream's working copy is synced by the checkpoints only: at its end it is removed.
          syncsAhead: !streamOut,
          signal: ctl.signal,
          abort: (e) => ctl.abort(e),
        })
      : null;
    d.on('piece', (index) => {
      streamOut?.have(index);
      checkpoints?.written(index, layout.pieceSize(index));
    });

    o.onStart?.(d, plan, { port });
    if (plan.lookalike) d.emit('warning', lookalikeWarning(plan.lookalike, plan.root));
    if (check.resume === 'ignored') d.emit('warning', resumeIgnored(resumeFile, check.reason));
    // Peers given that --bind cannot reach are skipped: said now (a seed never ends with an
    // error that would say it; a download says it at its end only if nothing comes).
    const far = farPeers(o.peers ?? [], o.localAddress);
    if (far.length > 0) {
      d.emit(
        'warning',
        `--peer ${namePeers(far)}: of the other address family than --bind ${o.localAddress} (IPv4 and IPv6 do not mix): not dialled`,
      );
    }
    for (let i = 0; i < storage.fileCount; i++) {
      if (storage.shadowed(i)) {
        const fin = storage.finalPath(i);
        const part = storage.partPath(i);
        d.emit(
          'warning',
          `both ${fin} and ${part} exist: resuming ${part}; ${fin} will be replaced when the download completes`,
        );
      }
    }
    if (check.mismatched.count > 0) {
      d.emit(
        'warning',
        `${check.mismatched.count} piece${check.mismatched.count === 1 ? '' : 's'} of the existing data under ${plan.root} ${check.mismatched.count === 1 ? 'does' : 'do'} not match this torrent: each is replaced once its verified piece has arrived`,
      );
    }

    checkpoints?.start();
    // The pieces present stream once the boundary pieces are copied from the parts file.
    if (streamOut)
      void ready.then(
        () => streamOut.start(check.have),
        () => {},
      );
    const running = d.run();
    // What the first announce brought while the download was being set up.
    early?.release(d);
    let stats = await running;
    let handedOver = false;
    if (!streamOut) o.onFiguresEnd?.(d, stats);
    checkpoints?.stop();
    if (!complete && streamOut) {
      // A stream's working copy is kept only for a later run of a stream that did not finish.
      // Once the reader has every byte it is waste (the command removes it): it is neither
      // synced (not even on close), checked, checkpointed nor renamed: on 256 MiB that was two
      // fdatasyncs of 40 ms each and the renames before the removal. Until then it stays as the download left it: the
      // last checkpoint, the pieces since in the journal (sound; an interrupt meanwhile writes
      // a final checkpoint, below).
      await writer?.idle();
      await untilAborted(streamOut.done, ctl.signal);
      // The run ends when the reader has the last byte: its figures run to then (the progress
      // events did; the summary's time went back to the download's end).
      stats = d.stats();
      o.onFiguresEnd?.(d, stats);
      storage.discardData();
      await out.removeLeftovers(writer);
      if (tracker && !selected) await tracker.complete(seeding).catch(() => {});
    } else if (!complete) {
      await writer?.idle();
      // Before declaring success: every file must still be the one written, at its full size.
      // The data is synced meanwhile, so that the complete checkpoint has nothing left to sync.
      await Promise.all([storage.checkIntact(), storage.sync()]);
      // A complete checkpoint first (it makes the data durable), so that a crash while renaming
      // still finds a complete torrent.
      if (writer) await writer.checkpoint(true);
      for (const p of await out.finalize()) d.emit('warning', cutWarning(p));
      await out.removeLeftovers(writer);
      // Only now, with the data checked and named, do trackers hear that we completed (not after
      // a partial selection: we are no seeder).
      if (tracker && !selected) await tracker.complete(seeding).catch(() => {});
      if (!seeding) handedOver = await handOver(d, ctl.signal, o.onHandOver);
    } else {
      // Complete before this run, and seeding: final names and attributes as any complete run.
      // `tdl seed` does not own the data: a file longer than the torrent's is left as it is.
      const keep = o.seedOnly === true;
      try {
        // `tdl seed` writes only here, under the output's lock (a download holds it already).
        const unlock = keep ? await out.lockToFinish() : null;
        try {
          for (const p of await out.finalize(keep)) d.emit('warning', cutWarning(p, keep));
          await out.removeLeftovers(null);
        } finally {
          await unlock?.();
        }
      } catch (e) {
        // `tdl seed` on media it may not write (read-only, another user's): every piece is
        // there, read where it is (a missing empty file reads as nothing), so it serves. Not
        // when a download runs there: its files are not the seed's to serve or rename.
        if (!keep || !(e instanceof DiskError) || e instanceof OutputInUseError) throw e;
        d.emit('warning', `${e.message}: seeding the data as it is`);
      }
    }
    // What went out while the files got their names counts: the trackers hear it too. After a
    // hand-over the run's time runs to its end (the download's own ended at onFiguresEnd).
    const now = d.stats();
    let final = {
      ...stats,
      uploaded: now.uploaded,
      ...(handedOver ? { elapsedMs: now.elapsedMs } : {}),
    };
    if (seeding) {
      // With the stats at completion: what was uploaded while the files got their final names
      // (a peer may ask as soon as they are there) is the seeding's, not the download's.
      o.onSeeding?.(d, stats);
      await seedUntil(d, meta.length, o.seed ?? {}, ctl.signal);
      // Ended by its limit, not by a signal: what was sent (and counted) reaches the peers,
      // however slowly they read it.
      if (!ctl.signal.aborted) drainMs = SEED_END_DRAIN_MS;
      final = d.stats();
    }
    return { stats: final, plan, check: checkInfo, wasComplete: complete };
  } catch (e) {
    failed = true;
    checkpoints?.stop();
    // No more blocks from here on: a piece that completed while the last checkpoint was being
    // written would be on disk but only in its journal (sound, yet hashed again next time).
    dl?.close();
    // A stream whose reader was behind the completed download is saved too (see above).
    if (writer && (!dl?.isComplete || streamOut)) {
      // Save what was verified and written before the failure (best effort: the failure may be
      // the disk itself).
      await writer.checkpoint(true).catch((err: unknown) => {
        log('final checkpoint not written: %s', (err as Error).message);
      });
    }
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', forward);
    early?.release(null);
    // The trackers hear `stopped` while the rest is closed.
    const stopping = tracker?.stop().catch(() => {});
    streamOut?.stop();
    // The peers' connections end while the rest is closed too (what was sent reaches them).
    const ending = dl?.close(drainMs);
    try {
      await o.handoff?.close();
      await listener?.close();
      await dhtSource?.stop().catch(() => {});
      await writer?.close().catch(() => {});
      await out.close();
      // Ended before its first checkpoint was written (a port taken, no tracker it can use, the
      // checkpoint itself failing): nothing was written, nothing of it is worth keeping, and an
      // empty folder would only pass for the torrent's at the next run. Or failed with nothing to
      // show (no piece before, none since: a peer that never answered, Ctrl-C at once): its
      // resume file records nothing, and goes with the magnet's metadata this run kept beside
      // it. Either way an empty parts file and the folders it made go too. What earlier runs
      // left stays: their resume, parts and metadata files mark the output as this torrent's
      // (an empty file selected once holds no piece), and a later run would not know it.
      const nothingWritten = failed && (!writer || writer.count === 0);
      const nothingFound = failed && found === 0 && (dl?.stats().downloaded ?? 0) === 0;
      if (nothingWritten || nothingFound) {
        if (!nothingWritten) {
          if (!out.before.resume) await removeResumeFiles(resumeFile);
          if (o.torrentBytes && !out.before.metadata) await out.removeMetadata();
        }
        await out.removeEmptyParts();
        await out.removeMadeFolders();
      }
    } finally {
      await stopping;
      await ending;
    }
  }
}

/** A listener for incoming peers of this torrent, listening (closed again if it cannot). */
async function listen(o: ClientOptions, peerId: Buffer, pieceCount: number): Promise<Listener> {
  const handshakeMs = o.timeouts?.handshakeMs ?? o.peerTimeoutMs ?? 15_000;
  const listener = new Listener(
    { infoHash: o.meta.infoHash, peerId, pieceCount, handshakeMs: Math.min(handshakeMs, 15_000) },
    o.encryption,
  );
  try {
    await listener.listen(o.listen || {});
  } catch (e) {
    await listener.close().catch(() => {});
    throw e;
  }
  return listener;
}

/**
 * The announce session: a new one, started now, whose first answers are held (`early`) until
 * the download takes them; or a magnet's, which goes on (`started` was sent once, with this peer
 * id and port, and its peers and incoming connections go to the metadata phase until the
 * download takes them over).
 */
function announce(
  o: ClientOptions,
  peerId: Buffer,
  port: number,
  listener: Listener | null,
  stats: () => { uploaded: number; downloaded: number; left: number },
): { tracker: Announcer; early: EarlySource | null } {
  o.handoff?.setAnnounceStats(stats);
  const handed = o.handoff?.takeAnnouncer() ?? null;
  if (handed) return { tracker: handed, early: null };
  const tracker = new Announcer({
    announceList: o.meta.announceList,
    infoHash: o.meta.infoHash,
    peerId,
    port,
    stats,
    localAddress: o.localAddress,
  });
  const early = holdEarly(tracker, o.handoff ? null : listener);
  tracker.start();
  return { tracker, early };
}

/**
 * Where this run finds peers: the peers given by hand replace the trackers and the DHT (unless
 * `trackersToo`, a magnet link's own peers); private torrents (BEP 27) get peers from their
 * trackers only. NoPeersError when nothing could bring a peer (a seed that listens can wait for
 * peers that know its address).
 */
function peerSources(o: ClientOptions): {
  peers: PeerAddress[];
  /** How many peers were given (by hand and by the magnet link). */
  known: number;
  useTrackers: boolean;
  dht: ClientOptions['dht'];
  webSeeds: string[];
  /** Why no peer could come (the caller decides when that is fatal), or null. */
  unreachable: NoPeersError | null;
} {
  const { meta } = o;
  const peers = o.peers ?? [];
  const known = peers.length + (o.magnetPeers?.length ?? 0);
  const bySources = o.trackersToo || known === 0;
  const useTrackers = bySources && meta.announceList.length > 0;
  const dht = bySources && !meta.private ? (o.dht ?? null) : null;
  // Web seeds only give pieces: a seed, whose data is complete, has no use for them.
  const webSeeds = o.webSeeds === false || o.seedOnly === true ? [] : meta.urlList;
  const waitsForPeers = o.seedOnly === true && o.listen !== false;
  const sources = { peers, known, useTrackers, dht, webSeeds, unreachable: null };
  // Web seeds at addresses of the other family than --bind are left out (the feed says so).
  const unusable = webSeeds.filter((u) => webSeedOtherFamily(u, o.localAddress) !== undefined);
  const usableWebSeeds = webSeeds.length - unusable.length;
  // So are peers given at such addresses (the pool skips them): none of them could connect.
  const far = farPeers([...peers, ...(o.magnetPeers ?? [])], o.localAddress);
  if (known > far.length || dht || usableWebSeeds > 0 || waitsForPeers) return sources;
  if (known > 0 && !useTrackers) {
    return { ...sources, unreachable: farPeersError(far, o.localAddress!) };
  }
  if (!useTrackers) {
    const lacks = [
      meta.private ? 'the private torrent names no tracker' : 'the torrent names no tracker',
    ];
    if (unusable.length > 0) {
      lacks.push(
        `its web seeds cannot be reached from --bind ${o.localAddress} (${unusable.join(', ')})`,
      );
    }
    if (!meta.private) lacks.push('the DHT is off');
    const why = o.seedOnly
      ? 'no peer can reach this seed: the torrent names no tracker, no DHT is used and --no-listen accepts none'
      : `${lacks.length > 2 ? `${lacks.slice(0, -1).join(', ')}, and ${lacks.at(-1)}` : lacks.join(' and ')}: give peers with --peer HOST:PORT`;
    return { ...sources, unreachable: new NoPeersError(why) };
  }
  // Trackers of kinds tdl cannot use (wss://…) are only fatal when nothing else brings peers.
  try {
    requireUsableTracker(meta.announceList, o.localAddress);
  } catch (e) {
    if (e instanceof NoPeersError) return { ...sources, unreachable: e };
    throw e;
  }
  return sources;
}

/**
 * Ends a run that no peer could reach. A `--bind` address the machine lacks is the mistake to
 * report first (exit 2), as every other run says it: the other is a consequence of the options.
 */
async function refuse(unreachable: NoPeersError, o: ClientOptions): Promise<never> {
  if (o.localAddress) await Listener.checkAddress(o.localAddress);
  throw unreachable;
}

/** `p`, or the signal's reason as soon as it is aborted. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Seed until interrupted, `timeMs` passed or `ratio` reached; an interrupt ends it cleanly. */
/** Longest a download that does not seed stays for the peers taking its last copies. */
export const HAND_OVER_MAX_MS = 20_000;
const HAND_OVER_POLL_MS = 250;

/**
 * A download that does not seed leaves once complete, but not while peers are taking blocks
 * from it and some of its pieces are on none of them: it may hold the last copy the swarm
 * has (a seeder that left once every piece was somewhere), and leaving at once would strand
 * the peers without it. It stays until each such piece is on a connected peer (announced by a
 * `have`), nobody has taken a block for 3 s, HAND_OVER_MAX_MS, or a signal.
 */
async function handOver(
  d: Download,
  signal: AbortSignal,
  onHandOver: ((pieces: number) => void) | undefined,
): Promise<boolean> {
  const sole = d.soleCopies();
  if (sole === 0 || signal.aborted) return false;
  log('staying for %d piece(s) on no connected peer', sole);
  onHandOver?.(sole);
  const started = Date.now();
  while (!signal.aborted && Date.now() - started < HAND_OVER_MAX_MS && d.soleCopies() > 0) {
    // A signal ends the wait at once (the abort rejects the sleep: nothing to report).
    await sleep(HAND_OVER_POLL_MS, undefined, { signal }).catch(() => {});
  }
  log('left after %d ms, %d piece(s) on no connected peer', Date.now() - started, d.soleCopies());
  return true;
}

function seedUntil(
  d: Download,
  size: number,
  limits: SeedLimits,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const started = Date.now();
    // The data can no longer be served as verified (a file changed on disk): seeding ends.
    const onFault = (e: Error) => {
      stop();
      reject(e);
    };
    d.once('fault', onFault);
    const check = () => {
      const s = d.stats();
      const timeUp = limits.timeMs !== undefined && Date.now() - started >= limits.timeMs;
      const ratioMet = limits.ratio !== undefined && size > 0 && s.uploaded / size >= limits.ratio;
      if (timeUp || ratioMet || signal.aborted) done();
    };
    const timer = setInterval(check, 250);
    const stop = () => {
      clearInterval(timer);
      signal.removeEventListener('abort', done);
      d.off('fault', onFault);
    };
    const done = () => {
      stop();
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    // The ratio is met on the block that meets it (the timer alone let twice the target out).
    if (limits.ratio !== undefined && size > 0) d.capUpload(Math.ceil(limits.ratio * size), done);
    check();
  });
}

/** `-o` named a folder like the torrent's whose files differ: the torrent went inside it. */
function lookalikeWarning(folder: string, root: string): string {
  return (
    `${folder} holds files named as this torrent's, some at other sizes: not taken as its ` +
    `folder (their data is left alone); the torrent goes into ${root}`
  );
}

/** A resume file that could not be used: the data was checked by hashing instead. */
function resumeIgnored(file: string, reason: string | undefined): string {
  return `${file} not used (${reason ?? 'unreadable'}): what is on disk was checked by hashing instead`;
}

/** A file found longer than the torrent's, which finalize() cut (the user should know). */
function cutWarning(file: string, kept = false): string {
  return kept
    ? `${file} is longer than the torrent's file: served as it is, the bytes past its end left alone`
    : `${file} was longer than the torrent's file: cut to size`;
}

/** A run that found its files complete: the selection's size, as a download's stats give it. */
function idleStats(
  total: number,
  pieceCount: number,
  held: number,
  elapsedMs: number,
): DownloadStats {
  return {
    total,
    completed: total,
    initial: total,
    downloaded: 0,
    wasted: 0,
    wastedBy: { hashFailed: 0, duplicate: 0, afterCancel: 0, webSeed: 0 },
    piecesDone: held,
    pieceCount,
    rate: 0,
    uploaded: 0,
    uploadRate: 0,
    served: 0,
    connected: 0,
    active: 0,
    peersUsed: 0,
    fromWebSeeds: 0,
    piecesReplaced: 0,
    elapsedMs,
    firstUnchokeMs: -1,
    heldBytes: 0,
    budgetBytes: 0,
  };
}

/** Most peer addresses and warnings held from announces made before the download starts. */
const MAX_EARLY_PEERS = 2_000;
const MAX_EARLY_WARNINGS = 16;

interface EarlySource {
  /** Hands what was held to `d` (null: drops it) and stops holding. */
  release(d: Download | null): void;
}

/**
 * Holds the tracker's peers and warnings until the download is there to take them, and closes
 * incoming connections meanwhile (they come again; nothing could serve them yet).
 */
function holdEarly(tracker: Announcer, listener: Listener | null): EarlySource {
  const peers: PeerAddress[] = [];
  const warnings: string[] = [];
  const onPeers = (list: PeerAddress[]) => {
    for (const p of list) if (peers.length < MAX_EARLY_PEERS) peers.push(p);
  };
  const onWarning = (message: string) => {
    if (warnings.length < MAX_EARLY_WARNINGS) warnings.push(message);
  };
  const onIncoming = (conn: PeerConnection) => conn.close('not started yet');
  tracker.on('peers', onPeers);
  tracker.on('warning', onWarning);
  listener?.on('peer', onIncoming);
  let released = false;
  return {
    release(d) {
      if (released) return;
      released = true;
      tracker.off('peers', onPeers);
      tracker.off('warning', onWarning);
      listener?.off('peer', onIncoming);
      if (!d) return;
      for (const w of warnings) d.emit('warning', w);
      if (peers.length > 0) d.addPeers(peers, 'tracker');
    },
  };
}
