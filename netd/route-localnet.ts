// DNAT to 127.0.0.0/8 from another interface is a "martian" to the kernel unless that
// interface's route_localnet is 1 — a setting that also lets any packet addressed to 127.x in
// from that interface. So netd raises it only while a lease targets loopback through that
// interface, remembers the value it found, and puts that back when no lease needs it.
// CAP_NET_ADMIN is enough to write net sysctls of netd's own network namespace.
import { readFileSync, writeFileSync } from 'node:fs';

function sysctlPath(iface: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$/.test(iface) || iface === '.' || iface === '..') throw new Error(`${JSON.stringify(iface)} is not an interface name`);
  return `/proc/sys/net/ipv4/conf/${iface}/route_localnet`;
}

export function readRouteLocalnet(iface: string): string {
  return readFileSync(sysctlPath(iface), 'utf8').trim();
}

export function writeRouteLocalnet(iface: string, value: string): void {
  writeFileSync(sysctlPath(iface), `${value}\n`);
}

export function isLoopbackTarget(address: string): boolean {
  return /^127\./.test(address);
}
