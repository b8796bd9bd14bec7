import { readFile } from 'node:fs/promises';
import { parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS, GLOBAL_USAGE } from '../client';
import type { Output } from '../output';
import { adminStatusCommand } from './admin-status';

export const ADMIN_USAGE = `Usage: confide admin study create --file study.json
       confide admin invite --study NAME --participant NAME
       confide admin keys create --role researcher|auditor|admin [--label TEXT] [--identity=KEY]
       confide admin keys list [--json]
       confide admin keys revoke ID [--json]
       confide admin participants list --study NAME
       confide admin participants remove --study NAME --participant ID-OR-NAME
       confide admin status [--json]
--identity binds a researcher's identity public key (from 'confide keys researcher') to the new key, in the
ledger; a researcher needs one to submit paillier queries. Write it with '=': a base64url key may begin with '-'.
keys list shows every API key (id, role, label, created, revoked; never a token). keys revoke ID takes effect at
once: the key's next request is refused with 401 "API key ID was revoked at TIME".
participants list shows each participant's name, id, when it enrolled and whether it was removed. remove records
participant.removed in the ledger, deletes its Redis user and leaves it out of every later query (a query
already running goes on without it); its name stays taken in the study.
status (admin or auditor key) shows, per study, the participants enrolled and online (seen in the last 10 minutes,
as 'participant list' says), the queries running and those that failed or succeeded in the last hour, and the
ledger's size: counts only.
${GLOBAL_USAGE}`;

/** GET /v1/api-keys, one item. */
interface ApiKeyItem {
  id: string;
  role: string;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
  identityKeyFingerprint: string | null;
}

function keyLine(k: ApiKeyItem): string {
  return `${k.id}  ${k.role.padEnd(10)} ${k.createdAt}  ${k.revokedAt ? `REVOKED ${k.revokedAt}` : 'active'.padEnd(32)}  ${k.label ?? ''}`;
}

/** A participant as `GET /v1/studies/:name/participants` lists it. */
interface ParticipantRow {
  id: string;
  name: string;
  status: 'active' | 'removed';
  enrolledAt: string;
  removedAt: string | null;
  maxRecords: number;
}

/** `confide admin …`: studies, invitations, participants and API keys. */
export async function adminCommand(argv: readonly string[], out: Output): Promise<void> {
  const [area, action, ...rest] = argv;
  if (area === 'status') return adminStatusCommand(argv.slice(1), out);
  const sub = area === 'invite' ? 'invite' : `${area ?? ''} ${action ?? ''}`;
  const args = area === 'invite' ? [action, ...rest].filter((a): a is string => a !== undefined) : rest;
  switch (sub) {
    case 'study create': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, file: { type: 'string' } });
      out.json = values.json === true;
      if (!values.file) throw new UsageError('--file study.json is required');
      let study: unknown;
      try {
        study = JSON.parse(await readFile(values.file, 'utf8'));
      } catch (err) {
        throw new UsageError(`cannot read ${values.file} as JSON: ${(err as Error).message}`);
      }
      const created = await CoordinatorClient.from(values).post<{ id: string; name: string }>('/v1/studies', study);
      out.result(created, () => `created study ${created.name} (${created.id})`);
      return;
    }
    case 'invite': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, study: { type: 'string' }, participant: { type: 'string' } });
      out.json = values.json === true;
      if (!values.study || !values.participant) throw new UsageError('--study NAME and --participant NAME are required');
      const res = await CoordinatorClient.from(values).post<{ token: string; expiresAt: string }>(`/v1/studies/${encodeURIComponent(values.study)}/invitations`, { participant: values.participant });
      out.result({ token: res.token, expiresAt: res.expiresAt }, () => `invitation for ${values.participant} (valid until ${res.expiresAt}; give it to them privately):\n${res.token}`);
      return;
    }
    case 'keys create': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, role: { type: 'string' }, label: { type: 'string' }, identity: { type: 'string' } });
      out.json = values.json === true;
      if (!values.role || !['researcher', 'auditor', 'admin'].includes(values.role)) throw new UsageError('--role must be researcher, auditor or admin');
      if (values.identity !== undefined && values.role !== 'researcher') throw new UsageError('--identity binds a researcher identity key: only with --role researcher');
      const res = await CoordinatorClient.from(values).post<{ id: string; role: string; token: string; identityKeyFingerprint?: string }>('/v1/api-keys', {
        role: values.role,
        label: values.label,
        ...(values.identity !== undefined ? { identityKey: values.identity } : {}),
      });
      const bound = res.identityKeyFingerprint ? `\nbound to identity key ${res.identityKeyFingerprint}` : '';
      out.result({ token: res.token, id: res.id, role: res.role, ...(res.identityKeyFingerprint ? { identityKeyFingerprint: res.identityKeyFingerprint } : {}) }, () => `${res.role} API key ${res.id} (shown once):\n${res.token}${bound}`);
      return;
    }
    case 'participants list': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, study: { type: 'string' } });
      out.json = values.json === true;
      if (!values.study) throw new UsageError('--study NAME is required');
      const { participants: rows } = await CoordinatorClient.from(values).get<{ participants: ParticipantRow[] }>(`/v1/studies/${encodeURIComponent(values.study)}/participants`);
      out.result({ participants: rows }, () =>
        rows.length
          ? rows.map((p) => `${p.name.padEnd(20)} ${p.id}  ${p.status.padEnd(7)}  enrolled ${p.enrolledAt}${p.removedAt ? `  removed ${p.removedAt}` : ''}  maxRecords ${p.maxRecords}`).join('\n')
          : `no participants in ${values.study}`,
      );
      return;
    }
    case 'participants remove': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, study: { type: 'string' }, participant: { type: 'string' } });
      out.json = values.json === true;
      if (!values.study || !values.participant) throw new UsageError('--study NAME and --participant ID-OR-NAME are required');
      const res = await CoordinatorClient.from(values).delete<ParticipantRow & { ledgerIndex: number }>(`/v1/studies/${encodeURIComponent(values.study)}/participants/${encodeURIComponent(values.participant)}`);
      out.result({ ...res }, () => `removed ${res.name} (${res.id}) from ${values.study}: ledger entry ${res.ledgerIndex}; its Redis user is deleted and no later query includes it`);
      return;
    }
    case 'keys list': {
      const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS });
      out.json = values.json === true;
      const keys = await CoordinatorClient.from(values).get<ApiKeyItem[]>('/v1/api-keys');
      out.result({ keys }, () => (keys.length ? [`${'ID'.padEnd(36)}  ${'ROLE'.padEnd(10)} ${'CREATED'.padEnd(24)}  ${'STATE'.padEnd(32)}  LABEL`, ...keys.map(keyLine)].join('\n') : 'no API keys yet (the bootstrap admin token is not listed)'));
      return;
    }
    case 'keys revoke': {
      const { values, positionals } = parseCommandArgs(args, { ...GLOBAL_OPTIONS }, true);
      out.json = values.json === true;
      const [id, ...extra] = positionals;
      if (!id || extra.length) throw new UsageError("give one key id: confide admin keys revoke ID (ids from 'confide admin keys list')");
      const key = await CoordinatorClient.from(values).post<ApiKeyItem>(`/v1/api-keys/${encodeURIComponent(id)}/revoke`, {});
      out.result({ ...key }, () => `revoked ${key.role} API key ${key.id} at ${key.revokedAt ?? ''}`);
      return;
    }
    default:
      throw new UsageError(`unknown admin command ${JSON.stringify(argv.slice(0, 2).join(' '))}`);
  }
}
