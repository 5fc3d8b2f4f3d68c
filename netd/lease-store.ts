// netd's memory across restarts: the live leases and the route_localnet values it changed, in
// <stateDir>/leases.json. Written whole to a temporary file, fsync'd and renamed over the old
// one, so a crash leaves either the old or the new state, never half of one. Read as a small
// regular file only (runtime/read-small-file.ts): a FIFO, a symlink or a huge file in its place
// must not keep netd from starting; such a store is moved aside and netd starts with no leases.
import { renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { readSmallRegularFile } from '../runtime/read-small-file.ts';
import { fsyncDirectory, writeFileAtomically } from '../runtime/write-file-atomically.ts';
import { Lease, MAX_LEASES } from './api.ts';

const State = z.strictObject({
  version: z.literal(1),
  leases: z.array(Lease).max(MAX_LEASES),
  /** Interface → the route_localnet value netd found before raising it to 1. */
  routeLocalnet: z.record(z.string(), z.enum(['0', '1'])),
});
export type State = z.infer<typeof State>;

/** MAX_LEASES leases of about 350 bytes each, with room to spare. */
const MAX_STORE_BYTES = 1024 * 1024;

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
      text = readSmallRegularFile(this.path, MAX_STORE_BYTES).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw e;
    }
    const parsed = State.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`${this.path} is not a netd state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }

  /** Renames an unreadable store out of the way (replacing an older one); returns where it went. */
  moveAside(): string {
    const aside = `${this.path}.unreadable`;
    renameSync(this.path, aside);
    fsyncDirectory(dirname(this.path));
    return aside;
  }

  save(state: State): void {
    writeFileAtomically(dirname(this.path), 'leases.json', `${JSON.stringify(state, null, 1)}\n`, 0o600);
  }
}
