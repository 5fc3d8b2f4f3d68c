// The journal: privd's record of every run that is not committed yet, in <stateDir>/journal.json
// (root 0600, replaced atomically on every change). It names every file a run touches before the
// run touches it, so a privd killed at any point can put every target back together on start.
//
// A run's states:
//   installing  files are being staged, backed up and renamed (possibly a mix on disk)
//   installed   every target holds the new set; waiting for check and reload
//   checked     the services' checks passed with the new set; deploy.reload may now commit it
//   reloading   services are being reloaded with the new files
//   committing  the reload succeeded; the lineage is being switched to the new version
// Repair on start (repair-runs.ts): installing/installed/checked/reloading are rolled BACK to the complete
// old set of every target — nothing was confirmed by a check and a reload, so the old set is the
// last one known to work (after reloading, the services are reloaded again with the old files);
// committing is rolled FORWARD — the new set was checked and is already serving.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { KeyType } from '../keyd/api.ts';
import { writePrivateFileAtomic } from './write-atomic.ts';

const JournalFile = z.strictObject({
  /** Target directory (from the config) this file belongs to. */
  dir: z.string(),
  /** The file's final path, its temp beside it, and where the old file is kept (null: there was none). */
  path: z.string(),
  temp: z.string(),
  backup: z.strictObject({ path: z.string(), uid: z.number().int(), gid: z.number().int(), mode: z.number().int() }).nullable(),
});
export type JournalFile = z.infer<typeof JournalFile>;

const RunRecord = z.strictObject({
  runId: z.string(),
  cert: z.string(),
  state: z.enum(['installing', 'installed', 'checked', 'reloading', 'committing']),
  startedAt: z.string(),
  /** Per installed key type: the lineage version it becomes on commit, and its file-name suffix. */
  versions: z.partialRecord(KeyType, z.strictObject({ version: z.number().int().min(1), suffix: z.string() })),
  files: z.array(JournalFile),
});
export type RunRecord = z.infer<typeof RunRecord>;
export type RunState = RunRecord['state'];

const JournalShape = z.strictObject({ version: z.literal(1), runs: z.array(RunRecord) });

export class Journal {
  private readonly path: string;
  private readonly runs = new Map<string, RunRecord>();

  /** Throws when the journal exists but cannot be read: privd must not guess what was on disk. */
  constructor(stateDir: string) {
    this.path = join(stateDir, 'journal.json');
    if (!existsSync(this.path)) return;
    const parsed = JournalShape.safeParse(JSON.parse(readFileSync(this.path, 'utf8')));
    if (!parsed.success) throw new Error(`${this.path} is not a privd journal: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    for (const run of parsed.data.runs) this.runs.set(run.cert, run);
  }

  /** The uncommitted run of a certificate, if any. */
  runOf(cert: string): RunRecord | undefined {
    return this.runs.get(cert);
  }

  allRuns(): RunRecord[] {
    return [...this.runs.values()];
  }

  /** Records a run's new or changed entry; returns only once it is on disk. */
  save(run: RunRecord): void {
    this.runs.set(run.cert, run);
    this.flush();
  }

  setState(run: RunRecord, state: RunState): void {
    run.state = state;
    this.save(run);
  }

  remove(run: RunRecord): void {
    this.runs.delete(run.cert);
    this.flush();
  }

  private flush(): void {
    writePrivateFileAtomic(this.path, `${JSON.stringify({ version: 1, runs: [...this.runs.values()] }, null, 1)}\n`);
  }
}
