// The envelope around every call. Both ends validate it; unknown keys are errors.
import { z } from 'zod';
import { ERROR_CODE_PATTERN } from './errors.ts';

export const PROTOCOL_VERSION = 1;

export const RequestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export type RequestId = z.infer<typeof RequestId>;

export const MethodName = z.string().regex(/^[a-z][a-zA-Z0-9]{0,30}(\.[a-z][a-zA-Z0-9]{0,30}){0,3}$/);

export const Request = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id: RequestId,
  method: MethodName,
  params: z.unknown(),
});
export type Request = z.infer<typeof Request>;

export const WireError = z.strictObject({
  code: z.string().regex(ERROR_CODE_PATTERN),
  message: z.string().max(4096),
});
export type WireError = z.infer<typeof WireError>;

export const Response = z.discriminatedUnion('ok', [
  z.strictObject({ id: RequestId, ok: z.literal(true), result: z.unknown() }),
  // id is null when the request was too broken to carry one.
  z.strictObject({ id: RequestId.nullable(), ok: z.literal(false), error: WireError }),
]);
export type Response = z.infer<typeof Response>;

/** Best effort: the id of a request that failed validation, so the error can be matched. */
export function salvageId(message: unknown): RequestId | null {
  if (typeof message !== 'object' || message === null) return null;
  const parsed = RequestId.safeParse((message as { id?: unknown }).id);
  return parsed.success ? parsed.data : null;
}

/** One line a sysadmin can read, from a zod error. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top)'}: ${i.message}`)
    .join('; ');
}
