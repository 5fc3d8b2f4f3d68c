// Free loopback ports, so several test files can run real servers at the same time.
// The port is only known to be free at the moment of asking: harness starters retry on EADDRINUSE.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('cannot read the port of a loopback listener'));
      });
    });
  });
}

function udpPortIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => { socket.close(); resolve(false); });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

// udp: the port must also be free for UDP (a DNS server listens on both).
export async function freePort(opts: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freeTcpPort();
    if (!opts.udp || (await udpPortIsFree(port))) return port;
  }
  throw new Error('no loopback port free for both TCP and UDP after 20 attempts');
}

// Distinct ports for one server's several listeners.
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
