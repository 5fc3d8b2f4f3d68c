// Who is on the other end of this ssh session, as sshd tells the forced command: the client's
// address (SSH_CONNECTION) and, with `ExposeAuthInfo yes` (install --remote-only sets it for the
// remote user), the public key that authenticated (SSH_USER_AUTH names a file sshd wrote).
// The fingerprint is OpenSSH's own form (ssh-keygen -l): SHA256: and unpadded base64.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface SshIdentity {
  /** "SHA256:…", or null when sshd did not expose the key (ExposeAuthInfo off). */
  keyFingerprint: string | null;
  keyType: string | null;
  /** The client's address and port, from SSH_CONNECTION. */
  client: string | null;
}

export function sshIdentity(env: NodeJS.ProcessEnv = process.env): SshIdentity {
  const connection = env['SSH_CONNECTION']?.split(' ');
  const client = connection && connection.length >= 2 ? `${connection[0]}:${connection[1]}` : null;
  const key = publicKeyFromAuthInfo(env['SSH_USER_AUTH']);
  return { keyFingerprint: key ? fingerprintOf(key.blob) : null, keyType: key?.type ?? null, client };
}

/** OpenSSH's SHA256 fingerprint of a public key blob (the base64 field of authorized_keys). */
export function fingerprintOf(base64Blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(base64Blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

// The file holds one line per authentication method that succeeded: "publickey ssh-ed25519 AAAA…".
function publicKeyFromAuthInfo(path: string | undefined): { type: string; blob: string } | null {
  if (!path) return null;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const m = /^publickey ([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,3})/.exec(line);
    if (m) return { type: m[1]!, blob: m[2]! };
  }
  return null;
}
