// netd's memory across restarts: the live leases and the route_localnet values it changed, in
// <stateDir>/leases.json. Written whole to a temporary file, fsync'd and renamed over the old
// one, so a crash leaves either the old or the new state, never half of one.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Lease } from './api.ts';

const State = z.strictObject({
  version: z.literal(1),
  leases: z.array(Lease).max(1000),
  /** Interface → the route_localnet value netd found before raising it to 1. */
  routeLocalnet: z.record(z.string(), z.enum(['0', '1'])),
});
export type State = z.infer<typeof State>;

export function emptyState(): State {
  return { version: 1, leases: [], routeLocalnet: {} };
}

export class LeaseStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'leases.json');
  }

  /** The saved state; an absent file is an empty state. A damaged one throws: the caller decides. */
  load(): State {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw e;
    }
    const parsed = State.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`${this.path} is not a netd state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }

  save(state: State): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dir = openSync(join(this.path, '..'), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
