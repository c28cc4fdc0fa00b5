/**
 * A web seed (BEP 19) for tests: a node:http server on 127.0.0.1 that serves files with Range
 * support, and misbehaves on demand.
 *
 *   const s = await startWebSeedServer({ files: { '/a.bin': data } });
 *   s.setFault('wrong-bytes', 3); // the next 3 requests get corrupted bytes, then all is well
 *   ...
 *   await s.close();              // also ends stalled responses
 *
 * A range past the end of a file gets a 416, one that runs past it a 206 cut at the end, as
 * from real servers (a file shorter than the torrent's).
 *
 * `files` is keyed by the raw request path (percent-encoding as the client must send it), so a
 * test also checks the URL the client built. Requests are recorded in `requests`.
 */
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import type net from 'node:net';

export type ServerFault =
  | 'none'
  | 'wrong-bytes' // right length, every byte flipped
  | 'not-found' // 404
  | 'server-error' // 503
  | 'retry-after' // 503 with Retry-After: 30
  | 'stall-headers' // never answers
  | 'informational-flood' // 1,000 informational (102) replies, then nothing
  | 'stall-body' // headers and half the body, then nothing
  | 'redirect-file' // 302 to file:///etc/passwd
  | 'redirect-ftp' // 302 to ftp://
  | 'redirect-loop' // 302 to the same URL, forever
  | 'redirect-no-location' // 302 without Location
  | 'redirect-ok' // 302 to the same path with ?moved=1, which is served normally
  | 'redirect-v6' // 302 to the same path on [::1]
  | 'redirect-refused' // 302 to the same path on 127.0.0.1 port 1, where nothing listens
  | 'short-body' // declares the right Content-Length, sends fewer bytes, closes
  | 'cut-body' // the right headers and half the body, then the connection is reset
  | 'long-body' // chunked, no Content-Length, more bytes than asked for
  | 'wrong-content-length' // a consistent reply one byte shorter than the range
  | 'wrong-range' // 206 for the range shifted by one byte
  | 'full-200' // ignores Range: 200 with the whole file
  | 'close-each' // serves right, closing the connection after each reply (Connection: close)
  | 'full-200-close' // as Python's http.server: ignores Range, closes after each reply
  | 'gzip'; // the range, gzip-compressed, with Content-Encoding: gzip

export interface WebSeedServerOptions {
  files: Record<string, Buffer>;
  fault?: ServerFault;
  /** The fault applies to this many requests, then the server behaves (default: forever). */
  faultCount?: number;
  /** Every response waits for this promise (to hold a seed back in a test). */
  gate?: Promise<void>;
  /**
   * Look files up by the percent-decoded path, so that any valid encoding finds them (for other
   * clients, which may encode differently); default: by the raw path.
   */
  decodePaths?: boolean;
  /** Send range bodies at about this many bytes a second (a slow mirror); default: at once. */
  bytesPerSecond?: number;
  /** With `bytesPerSecond`: this many range replies are sent at once first. */
  fastReplies?: number;
}

export interface RecordedRequest {
  path: string;
  range: string | undefined;
}

export interface WebSeedServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  origin: string;
  port: number;
  requests: RecordedRequest[];
  /** The address each request came from. */
  remoteAddresses: string[];
  setFault(fault: ServerFault, count?: number): void;
  setGate(gate: Promise<void> | undefined): void;
  close(): Promise<void>;
}

function parseRange(h: string | undefined, size: number): { a: number; b: number } | null {
  const m = h ? /^bytes=(\d+)-(\d*)$/.exec(h) : null;
  if (!m) return null;
  const a = Number(m[1]);
  const b = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return a <= b ? { a, b } : null;
}

export async function startWebSeedServer(opts: WebSeedServerOptions): Promise<WebSeedServer> {
  let rangeReplies = 0;
  let fault: ServerFault = opts.fault ?? 'none';
  let faultLeft = opts.faultCount ?? Infinity;
  let gate = opts.gate;
  const requests: RecordedRequest[] = [];
  const remoteAddresses: string[] = [];
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const query = q >= 0 ? rawUrl.slice(q + 1) : '';
    requests.push({ path, range: req.headers.range });
    remoteAddresses.push(req.socket.remoteAddress ?? '');
    let f: ServerFault = 'none';
    if (faultLeft > 0 && fault !== 'none' && query !== 'moved=1') {
      f = fault;
      faultLeft--;
    }
    const respond = (): void => serve(req, res, path, f);
    if (gate) gate.then(respond, respond);
    else respond();
  });

  function serve(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    f: ServerFault,
  ): void {
    if (req.socket.destroyed) return;
    const host = `127.0.0.1:${port}`;
    switch (f) {
      case 'stall-headers':
        return;
      case 'informational-flood':
        for (let i = 0; i < 1000; i++) res.writeProcessing();
        return;
      case 'not-found':
        res.writeHead(404, { 'content-length': '0' }).end();
        return;
      case 'server-error':
        res.writeHead(503, { 'content-length': '0' }).end();
        return;
      case 'retry-after':
        res.writeHead(503, { 'content-length': '0', 'retry-after': '30' }).end();
        return;
      case 'redirect-file':
        res.writeHead(302, { location: 'file:///etc/passwd', 'content-length': '0' }).end();
        return;
      case 'redirect-ftp':
        res.writeHead(302, { location: `ftp://${host}${path}`, 'content-length': '0' }).end();
        return;
      case 'redirect-loop':
        res.writeHead(302, { location: path, 'content-length': '0' }).end();
        return;
      case 'redirect-no-location':
        res.writeHead(302, { 'content-length': '0' }).end();
        return;
      case 'redirect-v6': {
        const port = (req.socket.localPort ?? 1).toString();
        res.writeHead(302, { location: `http://[::1]:${port}${path}`, 'content-length': '0' });
        res.end();
        return;
      }
      case 'redirect-refused':
        res.writeHead(302, { location: `http://127.0.0.1:1${path}`, 'content-length': '0' }).end();
        return;
      case 'redirect-ok':
        res.writeHead(307, { location: `${path}?moved=1`, 'content-length': '0' }).end();
        return;
      default:
        break;
    }
    let key = path;
    if (opts.decodePaths) {
      try {
        key = decodeURIComponent(path);
      } catch {
        key = '';
      }
    }
    const file = Object.hasOwn(opts.files, key) ? opts.files[key] : undefined;
    if (!file) {
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    const range = parseRange(req.headers.range, file.length);
    if (!range && /^bytes=\d+-\d*$/.test(req.headers.range ?? '') && f !== 'full-200') {
      // As real servers do for a range that starts past the end of the file.
      res.writeHead(416, { 'content-range': `bytes */${file.length}`, 'content-length': '0' });
      res.end();
      return;
    }
    const close = f === 'close-each' || f === 'full-200-close' ? { connection: 'close' } : {};
    if (!range || f === 'full-200' || f === 'full-200-close') {
      res.writeHead(200, { 'content-length': String(file.length), ...close }).end(file);
      return;
    }
    let { a, b } = range;
    if (f === 'wrong-range' && b + 1 < file.length) {
      a++;
      b++;
    }
    let body = file.subarray(a, b + 1);
    const contentRange = `bytes ${a}-${b}/${file.length}`;
    switch (f) {
      case 'wrong-bytes':
        body = Buffer.from(body.map((x) => x ^ 0xff));
        break;
      case 'stall-body':
        res.writeHead(206, {
          'content-range': contentRange,
          'content-length': String(body.length),
        });
        res.write(body.subarray(0, body.length >> 1));
        return;
      case 'cut-body': {
        const s = req.socket;
        s.write(
          `HTTP/1.1 206 Partial Content\r\nContent-Range: ${contentRange}\r\n` +
            `Content-Length: ${body.length}\r\n\r\n`,
        );
        s.write(body.subarray(0, body.length >> 1));
        setTimeout(() => s.destroy(), 20);
        return;
      }
      case 'short-body': {
        const s = req.socket;
        s.write(
          `HTTP/1.1 206 Partial Content\r\nContent-Range: ${contentRange}\r\n` +
            `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        );
        s.end(body.subarray(0, Math.max(0, body.length - 10)));
        return;
      }
      case 'long-body':
        res.writeHead(206, { 'content-range': contentRange });
        res.end(Buffer.concat([body, Buffer.alloc(10, 0x41)]));
        return;
      case 'wrong-content-length':
        body = body.subarray(0, body.length - 1);
        break;
      case 'gzip':
        body = gzipSync(body);
        break;
      default:
        break;
    }
    res.writeHead(206, {
      'content-range': contentRange,
      'content-length': String(body.length),
      ...close,
      ...(f === 'gzip' ? { 'content-encoding': 'gzip' } : {}),
    });
    if (opts.bytesPerSecond && ++rangeReplies > (opts.fastReplies ?? 0)) {
      trickle(res, body, opts.bytesPerSecond);
    } else {
      res.end(body);
    }
  }

  /** Writes `body` a tenth of `rate` every 100 ms, until it is all sent or the client left. */
  function trickle(res: http.ServerResponse, body: Buffer, rate: number): void {
    const step = Math.max(1, Math.round(rate / 10));
    let at = 0;
    const timer = setInterval(() => {
      if (res.destroyed || at >= body.length) {
        clearInterval(timer);
        return;
      }
      const end = Math.min(body.length, at + step);
      if (end === body.length) res.end(body.subarray(at, end));
      else res.write(body.subarray(at, end));
      at = end;
    }, 100);
    res.on('close', () => clearInterval(timer));
  }

  // Node's keep-alive timer starts once a response is handed to the kernel, not once it is read:
  // at 5 s (the default) it would cut a client still reading a large body slowly (a download
  // limit), as no web server's send timeout does.
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    remoteAddresses,
    setFault(f, count) {
      fault = f;
      faultLeft = count ?? Infinity;
    },
    setGate(g) {
      gate = g;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
