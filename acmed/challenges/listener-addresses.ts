// The addresses acmed's own http-01 listener answers on: one per address and port the config's
// http-01-listener challenges name. systemd (ListenStream= lines that install writes from this) or
// certsep-supervisor holds each for acmed all the time, so no other local user can bind one.
import { SocketAddress } from 'node:net';
import type { Config } from '../../config/schema.ts';

export interface ListenerAddress {
  address: string;
  port: number;
}

/** One spelling per address ("::1" for "0:0::1"), so a held socket is found for its config entry. */
export function listenerKey(address: string, port: number): string {
  const family = address.includes(':') ? 'ipv6' : 'ipv4';
  const canonical = new SocketAddress({ address, family }).address;
  return family === 'ipv6' ? `[${canonical}]:${port}` : `${canonical}:${port}`;
}

export function http01ListenerAddresses(config: Config): ListenerAddress[] {
  const byKey = new Map<string, ListenerAddress>();
  for (const { challenge } of config.certificates) {
    if (challenge?.type !== 'http-01-listener') continue;
    const key = listenerKey(challenge.address, challenge.port);
    if (!byKey.has(key)) byKey.set(key, { address: challenge.address, port: challenge.port });
  }
  return [...byKey.values()];
}

/** systemd.socket(5) ListenStream= for an address: "127.0.0.1:8402", "[::1]:8402". */
export function listenStreamOf({ address, port }: ListenerAddress): string {
  return `ListenStream=${listenerKey(address, port)}`;
}
