// Field-level schemas shared by the config structure. Values here reach argv arrays, file
// modes, directory names and DNS zones, so each one is checked as tightly as its use demands.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { z } from 'zod';
import { toAsciiDnsName } from './dns-name.ts';

const NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/**
 * Whether s is safe as a certificate/CA/service/exposure name, including names received over
 * the wire: it becomes a directory name, so no '/', no '..', no NUL or other control characters.
 * The regex alone already excludes '/', NUL and control characters; '..' needs its own test.
 */
export function isSafeName(s: unknown): s is string {
  return typeof s === 'string' && NAME.test(s) && !s.includes('..');
}

export const SafeName = z.string().refine(isSafeName, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a valid name (lowercase letters, digits, "_", "." and "-", at most 63, starting with a letter or digit, no "..")`,
});

export const AbsolutePath = z.string().refine(
  (s) => !CONTROL_CHARS.test(s) && posix.isAbsolute(s) && posix.normalize(s) === s && (s === '/' || !s.endsWith('/')),
  { error: (iss) => `${JSON.stringify(iss.input)} must be an absolute, normalized path (no "..", ".", "//", trailing "/" or control characters)` },
);

export const DnsName = z.string().transform((raw, ctx) => {
  const ascii = toAsciiDnsName(raw);
  if (ascii === null) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw)} is not a valid DNS name`, input: raw });
    return z.NEVER;
  }
  return ascii;
});

export const IpAddress = z.string().refine((s) => isIP(s) !== 0, {
  error: (iss) => `${JSON.stringify(iss.input)} is not an IP address`,
});

export const Port = z.number().int().min(1).max(65535);

// Commands are exec'd directly, never through a shell. A bare program name is looked up in the
// daemon's fixed PATH; anything with a '/' must be absolute so the working directory cannot matter.
const Program = z.string().refine(
  (s) => (/^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/.test(s)) || (posix.isAbsolute(s) && posix.normalize(s) === s && !CONTROL_CHARS.test(s)),
  { error: (iss) => `${JSON.stringify(iss.input)} must be an absolute program path or a bare program name without "/"` },
);
const Argument = z.string().max(4096).refine((s) => !s.includes('\0'), { error: 'arguments cannot contain NUL' });

export const Argv = z.array(z.string()).min(1).max(256).pipe(
  z.tuple([Program], Argument),
);

export const Seconds = (max: number) => z.number().int().min(1).max(max);

/** A user or group: a name from /etc/passwd or /etc/group, or a numeric id. Resolved at runtime. */
export const UserRef = z.union([
  z.string().regex(/^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid user or group name` }),
  z.number().int().min(0).max(0xfffffffe),
]);

export const FileMode = z
  .string({
    error: (iss) =>
      typeof iss.input === 'number'
        ? `file modes must be quoted octal strings like "0640" (YAML 1.2 reads an unquoted 0640 as the decimal number 640)`
        : undefined,
  })
  .regex(/^[0-7]{3,4}$/, { error: (iss) => `${JSON.stringify(iss.input)} is not an octal mode like "0640"` })
  .refine((s) => (parseInt(s, 8) & 0o7000) === 0, { error: 'setuid, setgid and sticky bits are not allowed on certificate files' })
  .refine((s) => (parseInt(s, 8) & 0o002) === 0, { error: 'certificate files must not be world-writable' });

export const SystemdUnit = z.string().regex(/^[A-Za-z0-9_:][A-Za-z0-9:_.@\\-]{0,240}\.service$/, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a systemd service unit name (like "nginx.service")`,
});

export const NetworkInterface = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$/, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a network interface name`,
});

export const PrintableText = (max: number) =>
  z.string().min(1).max(max).refine((s) => !CONTROL_CHARS.test(s), { error: 'control characters are not allowed' });

// "host", "host:port" or "[ipv6]:port", the forms dig's @server and resolv.conf users expect.
function isResolverAddress(s: string): boolean {
  if (isIP(s) !== 0) return true;
  const m = /^\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?$/.exec(s) ?? /^([^:[\]\s]+)(?::([0-9]{1,5}))?$/.exec(s);
  if (!m) return false;
  const host = m[1] ?? '';
  const port = m[2] === undefined ? 53 : Number(m[2]);
  return port >= 1 && port <= 65535 && (isIP(host) !== 0 || toAsciiDnsName(host) !== null);
}

export const ResolverAddress = z.string().refine(isResolverAddress, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a resolver address like "127.0.0.1:53" or "[::1]:53"`,
});

/**
 * An SSH public key as known_hosts and authorized_keys hold it: "type base64", an optional comment
 * after. Only the key types OpenSSH 9 offers by default; DSA is gone.
 */
export const SshPublicKey = z.string().max(16384).transform((raw, ctx) => {
  const m = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) ([A-Za-z0-9+/]{16,}={0,3})(?: [^\x00-\x1f\x7f]*)?$/.exec(raw.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw.slice(0, 80))} is not an SSH public key like "ssh-ed25519 AAAA..."`, input: raw });
    return z.NEVER;
  }
  return `${m[1]} ${m[2]}`;
});

/** A login name for ssh's -l: what useradd accepts, and never something ssh could read as an option. */
export const LoginName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, {
  error: (iss) => `${JSON.stringify(iss.input)} is not a login name (lowercase letters, digits, "_" and "-")`,
});
