// certsepctl's way to deployd (and, for reads deployd does not proxy, to the other daemons): the
// socket the config names. certsepctl runs as root or a configured admin; the daemons check that.
import { deploydApi } from '../deployd/api.ts';
import type { Config } from '../config/schema.ts';
import type { Api, DaemonName, MethodTable, ParamsIn, ResultOut } from '../proto/api.ts';
import { callOnce } from '../proto/client.ts';
import { socketPathOf } from '../runtime/daemon.ts';

export function callDaemon<M extends MethodTable, K extends keyof M & string>(
  config: Config,
  api: Api<M>,
  method: K,
  params: ParamsIn<M[K]>,
): Promise<ResultOut<M[K]>> {
  return callOnce(api, socketPathOf(config, api.daemon as DaemonName), method, params);
}

export function callDeployd<K extends keyof (typeof deploydApi)['methods'] & string>(
  config: Config,
  method: K,
  params: ParamsIn<(typeof deploydApi)['methods'][K]>,
): Promise<ResultOut<(typeof deploydApi)['methods'][K]>> {
  return callDaemon(config, deploydApi, method, params);
}
