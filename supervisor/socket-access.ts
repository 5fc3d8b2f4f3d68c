// Who may connect to which socket under certsep-supervisor, as under systemd: each socket is mode
// 0660, owned by its daemon's account and group-owned by the group whose members are exactly the
// peers its api.ts lets call it, so the file system turns everyone else away before the RPC
// server's per-method uid check. This table is the one place the supervisor takes that from; the
// .socket units say the same (SocketUser/SocketGroup/SocketMode) and test/systemd/unit-files.test.ts
// holds them to it. The groups and their members are sysusers.d/certsep.conf's (install makes them).
import type { DaemonName } from '../proto/api.ts';

export const SOCKET_MODE = 0o660;

export const SOCKET_GROUPS: Readonly<Record<DaemonName, string>> = {
  privd: 'certsep-clients',
  keyd: 'certsep-keyclients',
  acmed: 'certsep-clients',
  netd: 'certsep-clients',
  deployd: 'certsep-clients',
};
