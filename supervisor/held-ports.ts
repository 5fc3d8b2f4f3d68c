// acmed's http-01 listener ports (from the config), bound here as root and held for as long as the
// supervisor runs, the way systemd holds a ListenStream= port: passed to acmed at each start, and
// never accepted on here. No other local user can bind one, not even while acmed restarts.
import type { Config } from '../config/schema.ts';
import { http01ListenerAddresses, listenerKey } from '../acmed/challenges/listener-addresses.ts';
import type { Logger } from '../proto/log.ts';
import { listenTcp } from '../proto/peercred.ts';

/**
 * The fds of the ports it could hold. One it cannot (another process has it) is logged and left
 * out: acmed then refuses orders on that address, with the reason, and every other certificate
 * renews as usual.
 */
export function holdListenerPorts(config: Config, log: Logger): number[] {
  return http01ListenerAddresses(config).flatMap(({ address, port }) => {
    try {
      return [listenTcp(address, port)];
    } catch (e) {
      const why = "cannot hold acmed's http-01 listener port: its orders fail until a restart finds the port free";
      log.error({ listener: listenerKey(address, port), err: (e as Error).message }, why);
      return [];
    }
  });
}
