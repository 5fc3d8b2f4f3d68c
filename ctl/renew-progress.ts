// certsepctl renew's live display on a terminal: one line per certificate with its current step
// and how long it has been working, redrawn in place with plain ANSI cursor movement (no curses,
// no dependency). What it shows is computed by pure functions from deployd's progress events, so
// a test can feed it events recorded from a real run.
import type { CertResult, ProgressEvent } from '../deployd/api.ts';
import { renderTable } from './table.ts';

export interface CertProgress {
  cert: string;
  /** The latest event: what the certificate is doing now (or did last). */
  last: ProgressEvent;
  firstAtMs: number;
}

/** Certificates in the order deployd first mentioned them, each with its latest event. */
export function foldProgress(rows: Map<string, CertProgress>, events: readonly ProgressEvent[]): void {
  for (const event of events) {
    const known = rows.get(event.cert);
    rows.set(event.cert, { cert: event.cert, last: event, firstAtMs: known?.firstAtMs ?? Date.parse(event.at) });
  }
}

/**
 * The table as lines, header first. Elapsed time counts from a certificate's first event and runs
 * only while a step is under way, so a certificate that is done (or waits for the batched reload)
 * stops counting. With the run's results, each line ends in the certificate's final outcome.
 */
export function renderProgress(rows: ReadonlyMap<string, CertProgress>, nowMs: number, results?: readonly CertResult[]): string[] {
  const final = new Map(results?.map((r) => [r.cert, r]));
  const lines = [...rows.values()].map((row) => {
    const e = row.last;
    const result = final.get(row.cert);
    const endMs = e.state === 'start' && !result ? nowMs : Date.parse(e.at);
    const state = result ? result.outcome : e.state === 'start' ? 'running' : e.state === 'ok' ? 'ok' : 'FAILED';
    const detail = result?.error ? `${result.error.code} ${result.error.message}` : e.detail ?? '';
    return [row.cert, e.keyType ? `${e.step} [${e.keyType}]` : e.step, state, formatElapsed(endMs - row.firstAtMs), detail];
  });
  return renderTable(['NAME', 'STEP', 'STATE', 'ELAPSED', 'DETAIL'], lines).split('\n');
}

export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  return s < 60 ? `${s.toFixed(1)}s` : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

/** Draws the table on a terminal and redraws it in place: up N lines, then each line cleared and rewritten. */
export class LiveProgress {
  private readonly rows = new Map<string, CertProgress>();
  private drawn = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  add(events: readonly ProgressEvent[]): void {
    foldProgress(this.rows, events);
    this.draw();
  }

  draw(results?: readonly CertResult[]): void {
    if (this.rows.size === 0) return;
    // A line wider than the terminal wraps and the cursor-up count would be wrong, so cut it.
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    const all = renderProgress(this.rows, Date.now(), results).map((l) => l.slice(0, width));
    // Nor may the table be taller than the terminal: the cursor cannot move up past the top line.
    const room = Math.max(3, (this.out.rows ?? 24) - 2);
    const lines = all.length <= room ? all : [...all.slice(0, room - 1), `… and ${all.length - room + 1} more certificate(s)`];
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    this.out.write(`${up}${lines.map((l) => `\r\x1b[2K${l}`).join('\n')}\n\x1b[J`);
    this.drawn = lines.length;
  }
}
