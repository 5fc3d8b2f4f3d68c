// certsepctl remote-serve: the forced command of the central host's ssh key on a host with the
// remote role (authorized_keys: command="certsepctl remote-serve",restrict ssh-ed25519 …).
// It speaks certsep's framed, schema-checked protocol on stdin/stdout, offers remote/api.ts and
// nothing else, and forwards each call to this host's keyd or privd over their unix sockets as
// the remote user — which is all the authority it has: keyd and privd check that uid like any
// other caller, against this host's own config.
// Refused outright: running as any user but users.remote, and any command the client asked ssh
// for other than certsep's own (SSH_ORIGINAL_COMMAND) — a shell, scp, sftp, a port forward
// (restrict stops those in sshd), each with an audit record.
import { Duplex } from 'node:stream';
import { anchorFromEnvironment } from '../audit/anchor.ts';
import { AuditLog, type AuditEntry } from '../audit/log.ts';
import { loadConfig } from '../config/load.ts';
import { assertRootOwnedConfig } from '../config/ownership.ts';
import type { Config } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import { keydApi } from '../keyd/api.ts';
import { privdApi } from '../privd/api.ts';
import type { Handlers, PeerCredentials } from '../proto/api.ts';
import { callOnce } from '../proto/client.ts';
import { createLogger } from '../proto/log.ts';
import { RpcServer } from '../proto/server.ts';
import { EXIT_CONFIG, socketPathOf } from '../runtime/daemon.ts';
import { REMOTE_SERVE_COMMAND, remoteApi } from './api.ts';
import { sshIdentity } from './ssh-identity.ts';

type RemoteMethods = (typeof remoteApi)['methods'];

/** Serves one ssh session; resolves to the exit status. */
export async function serveRemote(configPath: string): Promise<number> {
  const log = createLogger('remote', process.env['CERTSEP_LOG_LEVEL'] ?? 'warn');
  let config: Config;
  try {
    assertRootOwnedConfig(configPath);
    config = loadConfig(configPath);
    const uid = process.getuid!();
    if (!uidsForRole(config, 'remote').includes(uid)) {
      throw new Error(`remote-serve runs as the user named by users.remote in ${configPath} (the ssh forced command's user), not uid ${uid}`);
    }
  } catch (e) {
    process.stderr.write(`certsepctl remote-serve: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  const ssh = sshIdentity();
  const auditLog = AuditLog.open(config.paths.auditDir, 'remote', { anchor: anchorFromEnvironment('remote') });
  const audit = {
    record: (entry: AuditEntry) => auditLog.record({ ...entry, detail: { ...entry.detail, ssh } }),
    writable: () => auditLog.writable(),
    get unwritableBecause() { return auditLog.unwritableBecause; },
  };
  const peer: PeerCredentials = { uid: process.getuid!(), gid: process.getgid!(), pid: process.ppid };

  const requested = process.env['SSH_ORIGINAL_COMMAND'];
  if (requested !== undefined && requested.trim() !== REMOTE_SERVE_COMMAND) {
    const message = 'this ssh key may only speak certsep\'s remote protocol; other commands, shells and file transfers are refused';
    audit.record({ peer, method: 'ssh.exec', params: { command: requested.slice(0, 256) }, outcome: 'refused', code: 'E_FORCED_COMMAND', message });
    auditLog.close();
    process.stderr.write(`certsepctl remote-serve: ${message}\n`);
    return 1;
  }

  const server = new RpcServer({
    api: remoteApi,
    handlers: forwardingHandlers(config),
    uidsFor: (role) => uidsForRole(config, role),
    audit,
    log,
    maxFrameBytes: config.rpc.maxFrameBytes,
    requestTimeoutMs: config.rpc.requestTimeoutSeconds * 1000,
  });
  const session = Duplex.from({ readable: process.stdin, writable: process.stdout });
  await new Promise<void>((resolve) => {
    session.once('end', resolve);
    session.once('close', resolve);
    server.serveStream(session, peer);
  });
  // The client hung up its side: answer what is still running (a reload may take a while), then go.
  await server.close(config.rpc.requestTimeoutSeconds * 1000);
  auditLog.close();
  return 0;
}

function forwardingHandlers(config: Config): Handlers<RemoteMethods> {
  const keyd = socketPathOf(config, 'keyd');
  const privd = socketPathOf(config, 'privd');
  return {
    'csr.create': (params) => callOnce(keydApi, keyd, 'csr.create', params),
    'deploy.install': (params) => callOnce(privdApi, privd, 'deploy.install', params),
    'deploy.check': (params) => callOnce(privdApi, privd, 'deploy.check', params),
    'deploy.reload': (params) => callOnce(privdApi, privd, 'deploy.reload', params),
    'deploy.rollback': (params) => callOnce(privdApi, privd, 'deploy.rollback', params),
    status: (params) => callOnce(privdApi, privd, 'status', params),
  };
}
