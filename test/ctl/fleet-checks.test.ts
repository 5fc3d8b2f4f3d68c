// certsepctl doctor's checks for hosts: deployd's ssh identity (owner, mode) and, under systemd,
// the unit drop-in that gives deployd network.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../config/load.ts';
import { checkFleet, FLEET_DROPIN } from '../../ctl/fleet-checks.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';

describe('doctor: hosts', () => {
  const dir = makeTempDir('fleet-checks');
  after(() => removeTempDir(dir));
  const identity = join(dir, 'id_ed25519');
  writeFileSync(identity, 'key\n');
  const config = parseConfig(`hosts:\n  web1:\n    address: 192.0.2.1\n    identityFile: ${identity}\n    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFake"]\n`, 'c.yaml');
  const deployd = TEST_IDS.deployd.uid;

  it('fails an identity others can read or deployd does not own, and passes one that is deployd\'s alone', () => {
    chownSync(identity, 0, 0);
    chmodSync(identity, 0o600);
    assert.match(checkFleet(config, deployd, '/', false)[0]!.detail, /owned by uid 0, not deployd's 61004/);
    chownSync(identity, deployd, deployd);
    chmodSync(identity, 0o644);
    const loose = checkFleet(config, deployd, '/', false)[0]!;
    assert.equal(loose.level, 'fail');
    assert.match(loose.detail, /mode 644; ssh refuses/);
    chmodSync(identity, 0o600);
    assert.equal(checkFleet(config, deployd, '/', false)[0]!.level, 'ok');
  });

  it('under systemd, fails without the drop-in that gives deployd network', () => {
    const root = join(dir, 'root');
    assert.deepEqual(checkFleet(config, deployd, root, true).map((f) => [f.check, f.level]), [['ssh identity', 'ok'], ['deployd network', 'fail']]);
    mkdirSync(join(root, FLEET_DROPIN, '..'), { recursive: true });
    writeFileSync(join(root, FLEET_DROPIN), '[Service]\n');
    assert.equal(checkFleet(config, deployd, root, true)[1]!.level, 'ok');
  });

  it('says nothing when no host is configured', () => {
    assert.deepEqual(checkFleet(parseConfig('', 'c.yaml'), deployd, '/', true), []);
  });
});
