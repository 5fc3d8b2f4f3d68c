// privd's mutating requests run one at a time, so two runs never interleave their writes, journal
// entries or reloads. One FIFO queue for all callers would let one caller (deployd queuing checks
// that each run up to a service's timeout) keep an admin waiting behind all of its requests, so
// callers take turns instead: each caller (peer uid) has its own queue, and the next request comes
// from the caller after the one just served. A request then waits for at most one request of each
// other caller that has any queued.

type Task = () => Promise<void>;

export class TakeTurns {
  /** Per caller, its waiting tasks; Map order is the order of turns. */
  private readonly queues = new Map<number, Task[]>();
  private running = false;

  run<T>(caller: number, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const queue = this.queues.get(caller) ?? [];
      queue.push(() => work().then(resolve, reject));
      this.queues.set(caller, queue);
      void this.serveInTurns();
    });
  }

  private async serveInTurns(): Promise<void> {
    if (this.running) return;
    this.running = true;
    for (let next = this.queues.entries().next(); !next.done; next = this.queues.entries().next()) {
      const [caller, queue] = next.value;
      const task = queue.shift()!;
      // To the back of the turns (or out, when it has nothing more queued).
      this.queues.delete(caller);
      if (queue.length > 0) this.queues.set(caller, queue);
      await task();
    }
    this.running = false;
  }
}
