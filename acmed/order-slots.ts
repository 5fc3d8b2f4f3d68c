// A limit on orders in flight (config acme.concurrency): enough parallelism that 30 renewals take
// a few order times rather than 30, few enough that a CA never sees a burst from one host.
export class OrderSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private limit: number) {}

  /** A reloaded acme.concurrency; acmed switches configs only with no order in flight. */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
