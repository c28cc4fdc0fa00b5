/**
 * A loopback DHT network of independent nodes (the npm `bittorrent-dht` package, not our code)
 * for tests and the benchmark. No tracker anywhere.
 *
 * Recipe that works (libtorrent's DHT ignores loopback nodes, see /work/shared/REAL-PEERS.md):
 * - `new DHT({ bootstrap: false, host: '127.0.0.1' })` for the first node, `listen(0, '127.0.0.1')`;
 * - every later node: `bootstrap: ['127.0.0.1:<port of node 0>', '127.0.0.1:<port of a random
 *   earlier node>']`, listen on an ephemeral port, wait for its 'ready' event;
 * - `host: '127.0.0.1'` makes a node that announces also store its own peer entry.
 * `close()` destroys every node (frees every socket); call it in afterAll/finally.
 */
import DHT from 'bittorrent-dht';

export interface ThirdPartyNode {
  dht: InstanceType<typeof DHT>;
  port: number;
}

export interface DhtNetwork {
  nodes: ThirdPartyNode[];
  /** 'host:port' of every node. */
  addresses(): { host: string; port: number }[];
  /** Announces `infoHash` with `port` from node `index`; resolves when done. */
  announce(index: number, infoHash: Buffer, port: number): Promise<void>;
  /** Looks `infoHash` up from node `index`; resolves with the peers it found. */
  lookup(index: number, infoHash: Buffer): Promise<{ host: string; port: number }[]>;
  close(): Promise<void>;
}

function listen(dht: InstanceType<typeof DHT>): Promise<number> {
  return new Promise((resolve, reject) => {
    dht.once('error', reject);
    dht.listen(0, '127.0.0.1', () => {
      dht.off('error', reject);
      resolve((dht.address() as { port: number }).port);
    });
  });
}

function ready(dht: InstanceType<typeof DHT>): Promise<void> {
  return new Promise((resolve) => {
    if ((dht as unknown as { ready: boolean }).ready) resolve();
    else dht.once('ready', () => resolve());
  });
}

/** Starts `count` nodes on 127.0.0.1 (ephemeral ports), each bootstrapped to earlier ones. */
export async function startDhtNetwork(count: number, seed = 1): Promise<DhtNetwork> {
  const nodes: ThirdPartyNode[] = [];
  let rnd = seed >>> 0 || 1;
  const next = (): number => {
    rnd = (rnd * 1103515245 + 12345) >>> 0;
    return rnd;
  };
  const close = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => new Promise<void>((r) => n.dht.destroy(() => r()))));
  };
  try {
    for (let i = 0; i < count; i++) {
      const bootstrap =
        i === 0 ? false : [...new Set([0, next() % i])].map((j) => `127.0.0.1:${nodes[j]!.port}`);
      const dht = new DHT({ bootstrap, host: '127.0.0.1' } as never);
      dht.on('error', () => undefined);
      dht.on('warning', () => undefined);
      const port = await listen(dht);
      nodes.push({ dht, port });
      await ready(dht);
    }
    // A second round so early nodes learn about later ones.
    await Promise.all(
      nodes.map(
        (n) =>
          new Promise<void>((resolve) => {
            const rpc = (n.dht as unknown as { _rpc: { populate: Function; id: Buffer } })._rpc;
            rpc.populate(rpc.id, { q: 'find_node', a: { id: rpc.id, target: rpc.id } }, () =>
              resolve(),
            );
          }),
      ),
    );
  } catch (err) {
    await close();
    throw err;
  }
  return {
    nodes,
    addresses: () => nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    announce: (index, infoHash, port) =>
      new Promise((resolve, reject) =>
        nodes[index]!.dht.announce(infoHash, port, (err?: Error) =>
          err ? reject(err) : resolve(),
        ),
      ),
    lookup: (index, infoHash) =>
      new Promise((resolve, reject) => {
        const dht = nodes[index]!.dht;
        const found: { host: string; port: number }[] = [];
        const onPeer = (peer: { host: string; port: number }, ih: Buffer): void => {
          if (ih.equals(infoHash)) found.push({ host: peer.host, port: peer.port });
        };
        dht.on('peer', onPeer);
        dht.lookup(infoHash, (err?: Error) => {
          dht.off('peer', onPeer);
          if (err) reject(err);
          else resolve(found);
        });
      }),
    close,
  };
}
