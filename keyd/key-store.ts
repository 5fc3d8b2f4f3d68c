// Where certificate keys live: <stateDir>/<cert>/<keyType>/<keyId>.pem (PKCS#8 PEM, 0600) and a
// "current" file naming the key the next CSR reuses under keyPolicy "reuse". Directories are 0700
// and owned by keyd's uid: no other uid, including the other daemons, can list or read a key.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isSafeName } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { KeyId, KeydErrorCode, KeyType } from './api.ts';
import { keyIdOf, keyTypeOf } from './generate-key.ts';
import { fsyncDirectory, TEMP_FILE, writeFileAtomically } from '../runtime/write-file-atomically.ts';

/**
 * Key versions kept per certificate and key type, newest first. Older ones stay exportable so a
 * CSR issued but not yet installed still has its key when privd asks; beyond this they are deleted.
 */
export const KEPT_KEY_VERSIONS = 3;

const KEY_FILE = /^([0-9a-f]{64})\.pem$/;
const CURRENT = 'current';
const KEY_FILE_MODE = 0o600;
const DIR_MODE = 0o700;
// A PKCS#8 RSA-4096 key is about 3.3 KB of PEM; anything much larger is not one of ours.
const MAX_KEY_FILE_BYTES = 16 * 1024;

export interface StoredKey {
  keyId: string;
  key: KeyObject;
  pem: string;
}

export class KeyStore {
  private constructor(
    private readonly root: string,
    private readonly uid: number,
  ) {}

  /** Creates the state dir 0700 if missing; refuses one another uid owns. */
  static open(stateDir: string, uid: number): KeyStore {
    mkdirSync(stateDir, { recursive: true, mode: DIR_MODE });
    const st = lstatSync(stateDir);
    if (!st.isDirectory()) throw new Error(`${stateDir} must be a directory, not a symlink or file`);
    if (st.uid !== uid) throw new Error(`${stateDir} is owned by uid ${st.uid}, not keyd's uid ${uid}: keys must live where only keyd can read them`);
    // tmpfiles.d or an admin may have made it group-readable; tightening our own dir is always safe.
    if ((st.mode & 0o077) !== 0) chmodSync(stateDir, DIR_MODE);
    return new KeyStore(stateDir, uid);
  }

  /** The key "current" names, or null when there is none yet (or it was removed by hand). */
  currentKeyId(cert: string, keyType: KeyType): string | null {
    const dir = this.keyDir(cert, keyType);
    let text: string;
    try {
      text = readFileSync(join(dir, CURRENT), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const keyId = text.trim();
    if (!KeyId.safeParse(keyId).success) {
      throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${join(dir, CURRENT)} does not hold a key id; remove it and keyd starts a new key`);
    }
    return existsSync(join(dir, `${keyId}.pem`)) ? keyId : null;
  }

  /**
   * Reads a key back, refusing it unless the file is still a regular 0600 file owned by keyd and
   * holds exactly the key its name promises, of the expected type: anything else means someone
   * other than keyd changed it, and a key others may have read must not be installed.
   */
  readKey(cert: string, keyType: KeyType, keyId: string): StoredKey {
    const path = join(this.keyDir(cert, keyType), `${keyId}.pem`);
    const pem = this.readOwnFile(path, cert, keyType, keyId);
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} is not a readable private key; refusing to use it`);
    }
    if (keyIdOf(key) !== keyId) throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} holds a different key than its name says; refusing to use it`);
    if (keyTypeOf(key) !== keyType) throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} is not an ${keyType} key; refusing to use it`);
    return { keyId, key, pem };
  }

  /** Stores a new key, makes it current and deletes versions beyond KEPT_KEY_VERSIONS. */
  saveNewKey(cert: string, keyType: KeyType, key: KeyObject): string {
    const dir = this.keyDir(cert, keyType);
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    const keyId = keyIdOf(key);
    writeFileAtomically(dir, `${keyId}.pem`, key.export({ type: 'pkcs8', format: 'pem' }) as string, KEY_FILE_MODE);
    writeFileAtomically(dir, CURRENT, `${keyId}\n`, KEY_FILE_MODE);
    this.pruneOldKeys(dir, keyId);
    return keyId;
  }

  private pruneOldKeys(dir: string, current: string): void {
    const stale = newestFirst(dir).filter((id) => id !== current).slice(KEPT_KEY_VERSIONS - 1);
    const leftovers = readdirSync(dir).filter((name) => TEMP_FILE.test(name));
    for (const name of [...stale.map((id) => `${id}.pem`), ...leftovers]) unlinkSync(join(dir, name));
    if (stale.length + leftovers.length > 0) fsyncDirectory(dir);
  }

  private readOwnFile(path: string, cert: string, keyType: KeyType, keyId: string): string {
    let fd: number;
    try {
      // O_NOFOLLOW: a symlink put in place of a key must not lead keyd to read (and hand out) another file.
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new RpcError(KeydErrorCode.NO_KEY, `no ${keyType} key ${keyId} for certificate "${cert}" (never made, or pruned as an old version)`);
      if (code === 'ELOOP') throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} is a symlink, not a key file keyd wrote; refusing to use it`);
      if (code === 'EACCES') throw new RpcError(KeydErrorCode.KEY_TAMPERED, `keyd may no longer read ${path}: someone changed its owner or mode; refusing to use it`);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} is not a regular file; refusing to use it`);
      if (st.uid !== this.uid || (st.mode & 0o7777) !== KEY_FILE_MODE) {
        throw new RpcError(
          KeydErrorCode.KEY_TAMPERED,
          `${path} is mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')} owned by uid ${st.uid}, not 0600 owned by keyd (uid ${this.uid}): someone changed it, so the key may have been read; refusing to use it (remove it and issue with a new key)`,
        );
      }
      if (st.size > MAX_KEY_FILE_BYTES) throw new RpcError(KeydErrorCode.KEY_TAMPERED, `${path} is ${st.size} bytes, too large for a key; refusing to use it`);
      const buffer = Buffer.alloc(st.size);
      let read = 0;
      while (read < st.size) {
        const n = readSync(fd, buffer, read, st.size - read, read);
        if (n === 0) break;
        read += n;
      }
      return buffer.subarray(0, read).toString('utf8');
    } finally {
      closeSync(fd);
    }
  }

  private keyDir(cert: string, keyType: KeyType): string {
    // The handlers only pass names from the config; this keeps a path from ever leaving the store.
    if (!isSafeName(cert) || !KeyType.safeParse(keyType).success) throw new Error(`refusing unsafe key path ${JSON.stringify([cert, keyType])}`);
    return join(this.root, cert, keyType);
  }
}

function newestFirst(dir: string): string[] {
  const keys = readdirSync(dir).flatMap((name) => {
    const id = KEY_FILE.exec(name)?.[1];
    return id === undefined ? [] : [{ id, mtimeNs: statSync(join(dir, name), { bigint: true }).mtimeNs }];
  });
  keys.sort((a, b) => (a.mtimeNs === b.mtimeNs ? 0 : a.mtimeNs > b.mtimeNs ? -1 : 1));
  return keys.map((k) => k.id);
}
