// The delivery queue's clock: while a chain waits for a host, deployd keeps a timer for the
// earliest next attempt and stays resident (no idle exit) until the queue is empty or its retries
// are used up, so a host that comes back gets its certificate without waiting for the next
// scheduled run. Attempts take the runner's lock: never during a run or a push.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../proto/log.ts';
import { retryDueDeliveries } from './deliveries.ts';
import type { DeliveryStore } from './delivery-store.ts';
import { toWireError } from './peers.ts';
import type { RenewalRunner } from './renewal-run.ts';
import type { FleetDeps } from './renew-on-hosts.ts';

// setTimeout's limit; a longer wait is simply re-armed when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
const BUSY_RECHECK_MS = 30_000;
// Never sooner than this after arming: an attempt that failed without moving its next attempt
// (a disk error writing the queue) must not spin.
const MIN_DELAY_MS = 1_000;

export class DeliveryRetries {
  private timer: NodeJS.Timeout | null = null;
  private attempting = false;

  constructor(
    private readonly store: DeliveryStore,
    private readonly runner: RenewalRunner,
    private readonly fleet: FleetDeps,
    private readonly log: Logger,
    private readonly afterAttempt: () => void,
    /** Takes an edited config before an attempt no request started. */
    private readonly beforeAttempt: () => void,
  ) {}

  /** (Re)schedules the next attempt from the queue; call after anything that changed it. */
  arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.store.nextAttempt();
    if (!next) return;
    this.timer = setTimeout(() => void this.attempt(), Math.min(Math.max(next.getTime() - Date.now(), MIN_DELAY_MS), MAX_TIMER_MS));
  }

  /** Work is scheduled: the daemon must not exit when idle. */
  busy(): boolean {
    return this.timer !== null || this.attempting;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async attempt(): Promise<void> {
    this.timer = null;
    if (this.runner.busy) {
      this.timer = setTimeout(() => void this.attempt(), BUSY_RECHECK_MS);
      return;
    }
    this.beforeAttempt();
    this.attempting = true;
    const runId = randomBytes(8).toString('hex');
    try {
      const results = await this.runner.exclusive(runId, () => retryDueDeliveries(this.fleet, runId));
      for (const r of results) this.log.info({ host: r.host, outcome: r.outcome, detail: r.detail }, 'delivery retry');
      this.afterAttempt();
    } catch (e) {
      this.log.warn({ error: toWireError(e) }, 'delivery retry failed');
    } finally {
      this.attempting = false;
      this.arm();
    }
  }
}
