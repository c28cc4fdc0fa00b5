/**
 * A scripted DHT "node" on 127.0.0.1 for hostile tests: a raw UDP socket that decodes the
 * queries it gets with our codec and answers whatever `handler` returns (raw bytes, or
 * nothing). Also sends arbitrary datagrams and collects what comes back. close() in finally.
 */
import dgram from 'node:dgram';
import { decodeKrpc } from '../../src/dht/krpc.js';
import type { KrpcMessage } from '../../src/dht/krpc.js';

export interface Received {
  msg: KrpcMessage | null;
  raw: Buffer;
  from: { host: string; port: number };
}

export type Handler = (m: KrpcMessage, from: { host: string; port: number }) => Buffer[] | void;

export class ScriptedNode {
  readonly received: Received[] = [];
  handler: Handler = () => undefined;
  private constructor(private readonly socket: dgram.Socket) {
    socket.on('message', (raw, rinfo) => {
      let msg: KrpcMessage | null = null;
      try {
        msg = decodeKrpc(raw);
      } catch {
        msg = null;
      }
      const from = { host: rinfo.address, port: rinfo.port };
      this.received.push({ msg, raw, from });
      if (!msg) return;
      for (const out of this.handler(msg, from) ?? []) this.socket.send(out, from.port, from.host);
    });
  }

  static async start(host = '127.0.0.1'): Promise<ScriptedNode> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => resolve());
    });
    return new ScriptedNode(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(buf: Buffer, port: number, host = '127.0.0.1'): void {
    this.socket.send(buf, port, host);
  }

  /** Replies (not queries) received so far. */
  replies(): Received[] {
    return this.received.filter((r) => r.msg && r.msg.y !== 'q');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
