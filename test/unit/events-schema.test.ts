import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { EVENTS_VERSION, jsonLine } from '../../src/cli/events.js';
import { checkEvent, eventErrors, parseEvents, schema } from '../helpers/events-schema.js';

const HASH = '0123456789abcdef0123456789abcdef01234567';

/** One valid sample of every object tdl writes. */
const SAMPLES: Record<string, Record<string, unknown>> = {
  started: {
    event: 'started',
    mode: 'download',
    port: 6881,
    name: 'x',
    infoHash: HASH,
    size: 100,
    pieces: 1,
    pieceLength: 16384,
    files: 1,
    output: '/tmp/x',
    present: 0,
  },
  checking: { event: 'checking', checked: 10, total: 100, valid: 5 },
  peerConnecting: { event: 'peer', address: '127.0.0.1:1', status: 'connecting', source: 'dht' },
  peerDropped: { event: 'peer', address: '[::1]:1', status: 'dropped', reason: 'timed out' },
  progress: {
    event: 'progress',
    downloaded: 50,
    total: 100,
    percent: 50,
    rate: 1000,
    uploaded: 0,
    uploadRate: 0,
    peers: 2,
    activePeers: 1,
    servedPeers: 0,
    piecesDone: 3,
    time: 250,
  },
  verifyProgress: { event: 'progress', checked: 10, total: 100, valid: 10, percent: 10 },
  warning: { event: 'warning', message: 'tracker http://t/…: timed out' },
  metadataFetching: { event: 'metadata', state: 'fetching', peers: 2, withMetadata: 1, known: 9 },
  metadataFetchingNamed: {
    event: 'metadata',
    state: 'fetching',
    peers: 0,
    withMetadata: 0,
    known: 1,
    name: 'Some Name',
  },
  metadataDone: { event: 'metadata', state: 'done', infoHash: HASH, size: 300 },
  metadataKept: { event: 'metadata', state: 'kept', infoHash: HASH, size: 300 },
  seeding: { event: 'seeding', uploaded: 0, time: 1200 },
  done: {
    event: 'done',
    size: 100,
    elapsedMs: 1200,
    averageRate: 83,
    downloaded: 100,
    present: 0,
    wasted: 0,
    wastedBy: { hashFailed: 0, duplicate: 0, afterCancel: 0 },
    uploaded: 0,
    uploadRate: 0,
    replaced: 0,
    peersUsed: 1,
    fromWebSeeds: 0,
    checkMs: 3,
    output: '/tmp/x',
  },
  verified: {
    event: 'verified',
    name: 'x',
    infoHash: HASH,
    output: '/tmp/x',
    complete: false,
    dataComplete: true,
    exitCode: 5,
    size: 100,
    valid: 100,
    percent: 100,
    pieces: 1,
    piecesValid: 1,
    piecesMissing: 0,
    piecesCorrupt: 0,
    readBytes: 100,
    elapsedMs: 4,
    files: [{ path: 'x', onDisk: '/tmp/x.part', length: 100, valid: 100, state: 'not-final' }],
  },
  error: { event: 'error', kind: 'no-peers', exitCode: 4, message: 'no peers' },
  info: {
    name: 'top',
    infoHash: HASH,
    size: 1010,
    pieceLength: 16384,
    pieces: 2,
    multiFile: true,
    hybrid: false,
    private: false,
    files: [
      { index: 1, path: ['a.bin'], length: 1000 },
      { path: ['.pad', '15384'], length: 15384, padding: true },
      { index: 2, path: ['l'], length: 0, symlink: ['a.bin'] },
    ],
    trackers: [['http://t/announce'], ['udp://u:1']],
    webSeeds: [],
    httpSeeds: [],
    creationDate: 1700000000,
    warnings: [],
  },
};

/** As tdl writes it: through jsonLine, then parsed back. */
const written = (o: Record<string, unknown>) => JSON.parse(jsonLine(o)) as Record<string, unknown>;

describe('docs/events.schema.json', () => {
  it('is a valid draft 2020-12 schema', () => {
    const ajv = new Ajv2020({ strict: true, strictRequired: false });
    expect(ajv.validateSchema(schema)).toBe(true);
  });

  it.each(Object.entries(SAMPLES))('accepts a %s sample as tdl writes it', (_, o) => {
    expect(eventErrors(written(o))).toEqual([]);
  });

  it('accepts fields it does not know (readers ignore them)', () => {
    expect(eventErrors(written({ ...SAMPLES['done']!, somethingNew: [1] }))).toEqual([]);
    expect(eventErrors(written({ ...SAMPLES['info']!, somethingNew: 1 }))).toEqual([]);
  });

  it('rejects an object without v, or with another version', () => {
    const { event, message } = SAMPLES['warning']!;
    expect(eventErrors({ event, message })).not.toEqual([]);
    expect(eventErrors({ v: 2, event, message })).not.toEqual([]);
  });

  it.each([
    ['an unknown event', { event: 'finished' }],
    ['a missing field', { ...SAMPLES['done']!, wastedBy: { hashFailed: 0, duplicate: 0 } }],
    ['a wrong type', { ...SAMPLES['progress']!, percent: '50' }],
    ['a negative count', { ...SAMPLES['progress']!, peers: -1 }],
    ['an unknown peer source', { ...SAMPLES['peerConnecting']!, source: 'carrier pigeon' }],
    ['an unknown peer status', { ...SAMPLES['peerDropped']!, status: 'gone' }],
    ['a progress of neither kind', { event: 'progress', checked: 1, total: 2 }],
    ['metadata done without its hash', { event: 'metadata', state: 'done', size: 1 }],
    ['metadata fetching without counts', { event: 'metadata', state: 'fetching' }],
    ['metadata fetching named by a number', { ...SAMPLES['metadataFetchingNamed']!, name: 7 }],
    ['an unknown error kind', { ...SAMPLES['error']!, kind: 'oops' }],
    ['an upper-case info hash', { ...SAMPLES['started']!, infoHash: HASH.toUpperCase() }],
    ['info without file indices', { ...SAMPLES['info']!, files: [{ path: ['a'], length: 1 }] }],
    [
      'info with an index on a padding file',
      { ...SAMPLES['info']!, files: [{ index: 1, path: ['p'], length: 1, padding: true }] },
    ],
    [
      'info with a 0 file index',
      { ...SAMPLES['info']!, files: [{ index: 0, path: [], length: 1 }] },
    ],
    ['info without its name', { ...SAMPLES['info']!, name: undefined }],
  ])('rejects %s', (_, o) => {
    expect(eventErrors(written(o))).not.toEqual([]);
  });

  it('checkEvent and parseEvents throw on an invalid line, naming the field', () => {
    expect(() => checkEvent(written({ event: 'warning' }))).toThrow(/message/);
    const good = jsonLine(SAMPLES['warning']!);
    expect(parseEvents(`text\n${good}${good}`)).toHaveLength(2);
    expect(() => parseEvents(`${good}${jsonLine({ event: 'seeding' })}`)).toThrow(/uploaded/);
  });

  it('jsonLine writes one line with v first', () => {
    const line = jsonLine({ event: 'warning', message: 'a\nb' });
    expect(line).toBe(`{"v":${EVENTS_VERSION},"event":"warning","message":"a\\nb"}\n`);
  });
});
