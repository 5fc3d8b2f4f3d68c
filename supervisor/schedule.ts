// The renewal schedule when no systemd timer runs it: every `everyMs` plus a random delay of up
// to `jitterMs` (so a fleet started together does not hit the CA together), the supervisor asks
// deployd for a run. deployd decides what is due; this only says "now".
import { deploydApi } from '../deployd/api.ts';
import { callOnce } from '../proto/client.ts';
import type { Logger } from '../proto/log.ts';

export function scheduleRenewals(deploydSocket: string, everyMs: number, jitterMs: number, log: Logger): () => void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const delay = everyMs + Math.floor(Math.random() * jitterMs);
    log.info({ nextRunAt: new Date(Date.now() + delay).toISOString() }, 'renewal scheduled');
    timer = setTimeout(() => void runOnce().finally(arm), delay);
  };
  const runOnce = async () => {
    try {
      const result = await callOnce(deploydApi, deploydSocket, 'renew.run', { all: true });
      log.info({ runId: result.runId, exitCode: result.exitCode, results: result.results.map((r) => `${r.cert}:${r.outcome}`) }, 'scheduled renewal finished');
    } catch (e) {
      log.error({ error: (e as Error).message }, 'scheduled renewal could not run');
    }
  };
  arm();
  return () => clearTimeout(timer);
}
