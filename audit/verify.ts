// Checks one audit file's hash chain, and the file against the anchors of its records (anchor.ts)
// kept where its daemon cannot reach. A chain shows where the record was changed, not what was
// there before: the first broken line is reported, since everything after it is unanchored. The
// chain alone cannot reveal a rewrite by the daemon itself (it can hash a new chain) or a cut at
// the end: an anchored record whose line differs, or anchors past the file's end, do.
import { basename } from 'node:path';
import type { Anchor, AnchorsBySeq } from './anchors.ts';
import { forEachLine, MAX_LINE_BYTES, type LineInfo } from './lines.ts';
import { AUDIT_FILE_SUFFIX, AuditRecord, GENESIS_HASH, hashLine } from './record.ts';

export interface AuditVerification {
  ok: boolean;
  /** Records whose chain checked out (all of them when ok). */
  records: number;
  /** Of those, how many an anchor vouches for. */
  anchored: number;
  /** The first line that breaks the chain (1-based) and why, in words for a sysadmin. */
  broken?: { line: number; reason: string };
}

interface ChainState {
  prevHash: string;
  prevSeq: number;
}

export function verifyAuditFile(path: string, anchors: AnchorsBySeq = new Map()): AuditVerification {
  const name = basename(path);
  const daemon = name.endsWith(AUDIT_FILE_SUFFIX) ? name.slice(0, -AUDIT_FILE_SUFFIX.length) : undefined;
  const state: ChainState = { prevHash: GENESIS_HASH, prevSeq: 0 };
  let records = 0;
  let anchored = 0;
  let lines = 0;
  let broken: AuditVerification['broken'];
  forEachLine(path, (line, info) => {
    lines = info.number;
    const reason = whyLineBreaksChain(line, info, state, daemon) ?? whyLineDiffersFromAnchors(state, anchors);
    if (reason !== null) {
      broken = { line: info.number, reason };
      return false;
    }
    records += 1;
    if (anchors.has(state.prevSeq)) anchored += 1;
    return true;
  });
  broken ??= whyAnchorsGoFurther(state.prevSeq, lines + 1, anchors);
  return broken ? { ok: false, records, anchored, broken } : { ok: true, records, anchored };
}

/** Null when the line continues the chain (and advances state), else the reason it does not. */
function whyLineBreaksChain(line: Buffer, info: LineInfo, state: ChainState, daemon: string | undefined): string | null {
  if (info.overlong) return `longer than ${MAX_LINE_BYTES} bytes; no audit record is that long`;
  if (!info.complete) return 'incomplete last line (a write was cut short, e.g. by a crash or a full disk)';
  let json: unknown;
  try {
    json = JSON.parse(line.toString('utf8'));
  } catch {
    return 'not valid JSON (the line was edited, or a write was cut short)';
  }
  const parsed = AuditRecord.safeParse(json);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? 'record')))].join(', ');
    return `not an audit record (bad or missing ${fields})`;
  }
  const record = parsed.data;
  if (info.number === 1 && (record.prev !== GENESIS_HASH || record.seq !== 1)) {
    return `the first record has seq ${record.seq} and does not start the chain (records before it were removed)`;
  }
  if (record.prev !== state.prevHash) {
    return `prev hash does not match line ${info.number - 1} (a record was edited, deleted or reordered; seq ${record.seq} follows seq ${state.prevSeq})`;
  }
  if (record.seq !== state.prevSeq + 1) {
    return `seq ${record.seq} follows seq ${state.prevSeq} (the seq was edited)`;
  }
  if (daemon !== undefined && record.daemon !== daemon) {
    return `record says daemon ${JSON.stringify(record.daemon)} but this is ${daemon}'s file`;
  }
  state.prevHash = hashLine(line);
  state.prevSeq = record.seq;
  return null;
}

/** After a line continued the chain: null unless an anchor for its seq names another line. */
function whyLineDiffersFromAnchors(state: ChainState, anchors: AnchorsBySeq): string | null {
  const other = anchors.get(state.prevSeq)?.find((a) => a.sha256 !== state.prevHash);
  if (!other) return null;
  return `record seq ${state.prevSeq} is not the one anchored in ${other.source} at ${other.time} ` +
    `(sha256 ${other.sha256.slice(0, 16)}…): the log was rewritten from here on`;
}

function whyAnchorsGoFurther(lastSeq: number, line: number, anchors: AnchorsBySeq): AuditVerification['broken'] {
  let furthest: Anchor | undefined;
  for (const [seq, list] of anchors) if (seq > lastSeq && seq > (furthest?.seq ?? 0)) furthest = list[0];
  if (!furthest) return undefined;
  const reason = `the log ends at seq ${lastSeq}, but ${furthest.source} anchored records up to seq ${furthest.seq} ` +
    `(at ${furthest.time}): records were cut from the end`;
  return { line, reason };
}
