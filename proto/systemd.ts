// systemd integration without libsystemd: socket activation (sd_listen_fds(3)) and sd_notify(3).
import { sendNotify } from './peercred.ts';

const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd passed us, if any. Like sd_listen_fds(unset_environment=1) the
 * variables are removed so that commands we spawn do not think the fd is theirs.
 */
export function takeInheritedListenFd(env: NodeJS.ProcessEnv = process.env): number | null {
  const pid = env.LISTEN_PID;
  const count = Number(env.LISTEN_FDS ?? '0');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== String(process.pid) || !Number.isInteger(count) || count < 1) return null;
  return SD_LISTEN_FDS_START;
}

/**
 * Every socket passed (fds 3, 4, …), without taking them: a daemon that is passed more than its
 * RPC socket reads the others before takeInheritedListenFd() clears the variables.
 */
export function inheritedListenFds(env: NodeJS.ProcessEnv = process.env): number[] {
  const count = Number(env.LISTEN_FDS ?? '0');
  if (env.LISTEN_PID !== String(process.pid) || !Number.isInteger(count) || count < 1) return [];
  return Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i);
}

/** Sends one notification if we run under a service manager that asked for them; never throws. */
export function notifySystemd(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): boolean {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  const message = Object.entries(fields)
    .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)
    .join('\n');
  try {
    sendNotify(socketPath, message);
    return true;
  } catch {
    return false;
  }
}
