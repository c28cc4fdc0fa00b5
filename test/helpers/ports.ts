/**
 * A TCP port on 127.0.0.1 that was free a moment ago: for a program told where to listen
 * (`--port`), or a port nobody listens on (a connection there is refused).
 */
import net from 'node:net';

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
