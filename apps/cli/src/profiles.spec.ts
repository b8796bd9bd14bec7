import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './args';
import { resolveConnection } from './client';
import { profileDir, profileFile, readProfiles, removeProfile, saveProfile, selectProfile } from './profiles';

describe('profiles and connection precedence', () => {
  let config: string;
  let env: NodeJS.ProcessEnv;
  const saved = (coordinator: string, token?: string) => ({ coordinator, ...(token ? { token } : {}), savedAt: '2026-12-07T00:00:00.000Z' });

  beforeEach(() => {
    config = mkdtempSync(join(tmpdir(), 'confide-profiles-'));
    env = { XDG_CONFIG_HOME: config };
  });
  afterEach(() => rmSync(config, { recursive: true, force: true }));

  it('stores profiles under $XDG_CONFIG_HOME/confide, directory 0700 and file 0600', () => {
    saveProfile('default', saved('http://127.0.0.1:1', 'tok-default'), env);
    expect(profileDir(env)).toBe(join(config, 'confide'));
    expect(statSync(profileDir(env)).mode & 0o777).toBe(0o700);
    expect(statSync(profileFile(env)).mode & 0o777).toBe(0o600);
    expect(readProfiles(env).default?.token).toBe('tok-default');
  });

  it('falls back to ~/.config/confide without XDG_CONFIG_HOME', () => {
    expect(profileDir({})).toMatch(/\/\.config\/confide$/);
  });

  it('refuses a profiles file that group or others may read, naming the file and the fix', () => {
    saveProfile('default', saved('http://127.0.0.1:1', 'tok'), env);
    chmodSync(profileFile(env), 0o644);
    expect(() => readProfiles(env)).toThrow(UsageError);
    expect(() => resolveConnection({}, true, env)).toThrow(`refusing to read ${profileFile(env)}: its mode is 0644`);
    chmodSync(profileFile(env), 0o600);
    expect(resolveConnection({}, true, env).token).toBe('tok');
  });

  it('takes each setting from the flag, else the environment, else the profile', () => {
    saveProfile('default', saved('http://127.0.0.1:1', 'tok-profile'), env);
    expect(resolveConnection({}, true, env)).toEqual({ url: 'http://127.0.0.1:1', token: 'tok-profile', insecure: false, timeoutMs: 30_000 });
    const withEnv = { ...env, CONFIDE_TOKEN: 'tok-env', CONFIDE_TIMEOUT: '5' };
    expect(resolveConnection({}, true, withEnv)).toMatchObject({ url: 'http://127.0.0.1:1', token: 'tok-env', timeoutMs: 5000 });
    expect(resolveConnection({ token: 'tok-flag', timeout: '2.5' }, true, withEnv)).toMatchObject({ token: 'tok-flag', timeoutMs: 2500 });
  });

  it('selects the profile --profile names over CONFIDE_PROFILE over "default"', () => {
    saveProfile('default', saved('http://127.0.0.1:1', 'tok-default'), env);
    saveProfile('audit', saved('http://127.0.0.1:2', 'tok-audit'), env);
    saveProfile('lab', saved('http://127.0.0.1:3', 'tok-lab'), env);
    expect(resolveConnection({}, true, { ...env, CONFIDE_PROFILE: 'audit' })).toMatchObject({ url: 'http://127.0.0.1:2', token: 'tok-audit' });
    expect(resolveConnection({ profile: 'lab' }, true, { ...env, CONFIDE_PROFILE: 'audit' })).toMatchObject({ url: 'http://127.0.0.1:3', token: 'tok-lab' });
    expect(() => selectProfile('nope', env)).toThrow(`no profile named "nope" in ${profileFile(env)}`);
  });

  it("never sends a profile's token to another coordinator given by flag or environment", () => {
    saveProfile('default', saved('http://127.0.0.1:1', 'tok-profile'), env);
    expect(() => resolveConnection({ coordinator: 'http://127.0.0.1:9' }, true, env)).toThrow(/give --token/);
    expect(resolveConnection({}, true, { ...env, CONFIDE_URL: 'http://127.0.0.1:1/' }).token).toBe('tok-profile');
  });

  it('rejects a bad --timeout and a bad profile name', () => {
    expect(() => resolveConnection({ coordinator: 'http://127.0.0.1:1', token: 't', timeout: 'soon' }, true, env)).toThrow('--timeout must be a number of seconds, got "soon"');
    expect(() => resolveConnection({ coordinator: 'http://127.0.0.1:1', token: 't', timeout: '0' }, true, env)).toThrow('--timeout must be more than 0');
    expect(() => saveProfile('../evil', saved('http://127.0.0.1:1'), env)).toThrow('--profile must be 1–64 letters');
  });

  it('removes a profile on logout', () => {
    saveProfile('lab', saved('http://127.0.0.1:3', 'tok-lab'), env);
    expect(removeProfile('lab', env)).toBe(true);
    expect(removeProfile('lab', env)).toBe(false);
    expect(readProfiles(env)).toEqual({});
  });
});
