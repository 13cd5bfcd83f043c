// Members for browser tests, created the way an operator does: `portal member add`.

import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { repoRoot } from './paths.mjs';
import { portalBinary } from './server.mjs';

const run = promisify(execFile);

let serial = 0;

/**
 * Creates a member of `slug` in the running portal's database; resolves to
 * {user_id, password, birthDate, name, email}. Each member gets an address of their own
 * unless `email` is given: mail is read by address, and the portal sends one address only
 * so many mails an hour.
 */
export async function addMember(portal, slug, { name = 'ダイワ タロウ', birthDate = '1985-06-15', email } = {}) {
  serial += 1;
  email ??= `taro.${process.pid}.${serial}@example.jp`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PORTAL_')));
  Object.assign(env, {
    PORTAL_DATA_DIR: portal.dataDir,
    PORTAL_THEMES_DIR: path.join(repoRoot, 'themes'),
    PORTAL_ADMIN_UI_DIR: path.join(repoRoot, 'admin-ui'),
    PORTAL_DEMO: 'false',
    PORTAL_TENANTS_DIR: portal.tenantsDir ?? path.join(repoRoot, 'tenants'),
  });
  const { stdout } = await run(
    portalBinary,
    ['member', 'add', slug, '--name', name, '--birth-date', birthDate, '--email', email],
    { env, cwd: portal.dataDir },
  );
  return { ...JSON.parse(stdout), birthDate, name, email };
}
