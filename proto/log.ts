// Operational logs: JSON lines on stderr (journald under systemd). The audit trail is separate
// (audit/): these logs are for debugging, the audit log is for security review.
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(name: string, level = process.env.CERTSEP_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { daemon: name } }, pino.destination({ fd: 2, sync: true }));
}
