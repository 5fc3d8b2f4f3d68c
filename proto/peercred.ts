// SO_PEERCRED, sd_notify and a TCP port held outside the event loop, from the in-tree N-API addon
// (proto/native/certsep_native.cc).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PeerCredentials } from './api.ts';

interface NativeAddon {
  peerCredentials(fd: number): PeerCredentials;
  notify(socketPath: string, message: string): void;
  listenTcp(address: string, port: number): number;
}

let addon: NativeAddon | null = null;

function loadAddon(): NativeAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  // Beside the bundle when installed (dist/), or in the node-gyp output in a checkout.
  const candidates = [join(here, 'certsep_native.node'), join(here, '..', 'build', 'Release', 'certsep_native.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`certsep native addon not found (looked at ${candidates.join(', ')}); run npm ci`);
  addon = createRequire(import.meta.url)(found) as NativeAddon;
  return addon;
}

/** The kernel's record of who connected: uid/gid/pid at connect(2) time. */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor');
  return loadAddon().peerCredentials(fd);
}

export function sendNotify(socketPath: string, message: string): void {
  loadAddon().notify(socketPath, message);
}

/**
 * A listening TCP socket on address:port that this process never accepts on (no event loop
 * watches it): to hold a port for a daemon it is passed to. Throws with `errno` (EADDRINUSE: taken).
 */
export function listenTcp(address: string, port: number): number {
  return loadAddon().listenTcp(address, port);
}
