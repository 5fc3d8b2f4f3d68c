// Reading the anchors of a daemon's audit records (anchor.ts writes them): the supervisor's root-
// owned file and, where journald runs, the journal. Only what the writer cannot forge counts: a
// line of the supervisor's file belongs to the daemon whose pipe it came from (the file's name),
// a journal entry to the unit journald saw send it (_SYSTEMD_UNIT, or _UID for remote-serve,
// which runs in an ssh session), never to the daemon an entry names itself.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { anchorsFileOf, JOURNAL_IDENTIFIER, JOURNAL_SOCKET } from './anchor.ts';
import { forEachLine } from './lines.ts';

export interface Anchor {
  seq: number;
  sha256: string;
  time: string;
  /** "the supervisor's anchor file", "the journal". */
  source: string;
}

/** A daemon's anchors by seq (several when a seq was anchored more than once). */
export type AnchorsBySeq = Map<number, Anchor[]>;

export interface AnchorSources {
  auditDir: string;
  /** Anchors from the journal, by daemon; null when journald does not run here. */
  journal: Map<string, Anchor[]> | null;
}

const SUPERVISOR = "the supervisor's anchor file";
const JOURNAL = 'the journal';

export function anchorsOf(daemon: string, sources: AnchorSources): AnchorsBySeq {
  const bySeq: AnchorsBySeq = new Map();
  const add = (a: Anchor) => {
    const list = bySeq.get(a.seq);
    if (list) list.push(a);
    else bySeq.set(a.seq, [a]);
  };
  const file = anchorsFileOf(sources.auditDir, daemon);
  if (existsSync(file)) {
    forEachLine(file, (line, info) => {
      if (!info.complete || info.overlong) return;
      const a = parseSupervisorLine(line.toString('utf8'));
      if (a) add(a);
    });
  }
  for (const a of sources.journal?.get(daemon) ?? []) add(a);
  return bySeq;
}

function parseSupervisorLine(text: string): Anchor | null {
  try {
    const { seq, sha256, time } = JSON.parse(text) as Record<string, unknown>;
    if (typeof seq !== 'number' || typeof time !== 'string' || typeof sha256 !== 'string') return null;
    if (!/^[0-9a-f]{64}$/.test(sha256)) return null;
    return { seq, sha256, time, source: SUPERVISOR };
  } catch {
    return null;
  }
}

/**
 * Every anchor journald holds, by the daemon that sent it (see the header); null when journald
 * does not run here. remoteUid is users.remote's uid on a host with the remote role.
 */
export function journalAnchors(remoteUid?: number): Map<string, Anchor[]> | null {
  if (!existsSync(JOURNAL_SOCKET)) return null;
  const query = ['--output=json', '--no-pager', '--quiet', `SYSLOG_IDENTIFIER=${JOURNAL_IDENTIFIER}`];
  const run = spawnSync('journalctl', query, { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (run.error || run.status !== 0) {
    const why = run.error?.message ?? run.stderr.trim();
    throw new Error(`cannot read the journal's audit anchors (journalctl: ${why}); run as root`);
  }
  const byDaemon = new Map<string, Anchor[]>();
  for (const line of run.stdout.split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    const unit = /^certsep-([a-z]+)\.service$/.exec(String(entry['_SYSTEMD_UNIT'] ?? ''))?.[1];
    const daemon = unit ?? (remoteUid !== undefined && entry['_UID'] === String(remoteUid) ? 'remote' : undefined);
    const seq = Number(entry['CERTSEP_AUDIT_SEQ']);
    const sha256 = String(entry['CERTSEP_AUDIT_SHA256'] ?? '');
    if (daemon === undefined || !Number.isSafeInteger(seq) || seq < 1 || !/^[0-9a-f]{64}$/.test(sha256)) continue;
    const time = new Date(Number(entry['__REALTIME_TIMESTAMP']) / 1000).toISOString();
    const list = byDaemon.get(daemon) ?? [];
    list.push({ seq, sha256, time, source: JOURNAL });
    byDaemon.set(daemon, list);
  }
  return byDaemon;
}
