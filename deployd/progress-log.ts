// The steps of recent runs, kept in memory for renew.progress: certsepctl polls it while its
// renew.run call waits, and shows each step as it happens.
import type { KeyType } from '../keyd/api.ts';
import type { ProgressEvent, Step } from './api.ts';

const KEPT_RUNS = 8;
const MAX_EVENTS_PER_ANSWER = 1000;

interface RunEvents {
  events: ProgressEvent[];
  finished: boolean;
}

export class ProgressLog {
  private readonly runs = new Map<string, RunEvents>();

  begin(runId: string): void {
    this.runs.set(runId, { events: [], finished: false });
    while (this.runs.size > KEPT_RUNS) this.runs.delete(this.runs.keys().next().value!);
  }

  note(runId: string, cert: string, step: Step, state: ProgressEvent['state'], detail?: string, keyType?: KeyType): void {
    const run = this.runs.get(runId);
    if (!run) return;
    run.events.push({
      seq: run.events.length + 1,
      at: new Date().toISOString(),
      cert,
      step,
      state,
      ...(keyType ? { keyType } : {}),
      ...(detail !== undefined ? { detail: detail.slice(0, 1024) } : {}),
    });
  }

  finish(runId: string): void {
    const run = this.runs.get(runId);
    if (run) run.finished = true;
  }

  /** null when the run is unknown (never started here, or long forgotten). */
  since(runId: string, afterSeq: number): { events: ProgressEvent[]; finished: boolean } | null {
    const run = this.runs.get(runId);
    if (!run) return null;
    const events = run.events.slice(afterSeq, afterSeq + MAX_EVENTS_PER_ANSWER);
    return { events, finished: run.finished && afterSeq + events.length >= run.events.length };
  }
}
