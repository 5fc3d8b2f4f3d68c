// The stable JSON of `certsepctl status --json`: scripts and monitoring parse it, so it is a
// schema (checked by the tests) with a version field, not whatever the code happens to print.
import { z } from 'zod';
import { CertStatus } from '../deployd/api.ts';

export const STATUS_JSON_VERSION = 1;

export const StatusJson = z.strictObject({
  version: z.literal(STATUS_JSON_VERSION),
  generatedAt: z.iso.datetime({ offset: true }),
  certs: z.array(CertStatus),
});
export type StatusJson = z.infer<typeof StatusJson>;
