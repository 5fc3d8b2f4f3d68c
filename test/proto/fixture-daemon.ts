// The fixture API served through runDaemon, exactly as a real daemon's main.ts would: used to
// test the command line, socket activation, sd_notify and idle exit end to end.
import { runDaemon } from '../../runtime/daemon.ts';
import { fixtureDaemonApi } from './fixture-api.ts';

await runDaemon({
  name: 'test-fixture',
  api: fixtureDaemonApi,
  start: async () => ({
    handlers: {
      echo: async ({ text }) => ({ text }),
      sleep: async ({ ms }) => {
        await new Promise((r) => setTimeout(r, ms));
        return { slept: ms };
      },
      rootOnly: async () => ({ done: true as const }),
      badResult: async () => ({ n: 0 }),
    },
  }),
});
