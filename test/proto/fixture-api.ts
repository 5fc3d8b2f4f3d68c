// A small API used only by the proto tests: it exercises every server path without any
// daemon's own logic in the way.
import { z } from 'zod';
import { defineApi } from '../../proto/api.ts';
import { configStatusMethod } from '../../runtime/config-status.ts';

export const fixtureApi = defineApi('test-fixture', {
  echo: {
    params: z.strictObject({ text: z.string().max(100_000) }),
    result: z.strictObject({ text: z.string() }),
    callers: ['root', 'deployd'],
  },
  sleep: {
    params: z.strictObject({ ms: z.number().int().min(0).max(60_000) }),
    result: z.strictObject({ slept: z.number() }),
    callers: ['root'],
  },
  rootOnly: {
    params: z.strictObject({ note: z.string().max(100).optional() }),
    result: z.strictObject({ done: z.literal(true) }),
    callers: ['root'],
    privileged: true,
  },
  badResult: {
    params: z.strictObject({}),
    result: z.strictObject({ n: z.number() }),
    callers: ['root'],
  },
});

/** The fixture as a daemon serves it through runDaemon, which adds config.status to every API. */
export const fixtureDaemonApi = defineApi('test-fixture', {
  ...fixtureApi.methods,
  'config.status': configStatusMethod,
});
