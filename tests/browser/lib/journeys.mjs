// Member journeys shared by the browser tests, walked the way the manuals tell a member to:
// fields by their visible label, buttons and links by their visible name.
//
//   const member = await addMember(portal, slug);
//   const { userId, password } = await firstLogin(page, portal, slug, member);
//   await logout(page, member.name);
//   await login(page, portal, slug, userId, password);
//
// Plus the operator's side of a journey: `portal tenant export` / `portal tenant apply -`
// (publishTerms) and the mails the portal wrote to <dataDir>/mail/ (mailsTo).

import { freshCode, registerApp } from './totp.mjs';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { repoRoot } from './paths.mjs';
import { portalBinary } from './server.mjs';

/** The seed's message for any failed password login (kanekakenpo: worded(slug, …)). */
export const INVALID_CREDENTIALS = '無効なユーザ ID またはパスワードです。';

/**
 * The names each society's screens give the second-factor methods, by method: its guide's
 * words (daiwakenpo ⑦ 「生体認証、OTP認証」; kanekakenpo 【1】 a.–C.).
 */
export const METHOD_LABELS = {
  daiwakenpo: { passkey: '生体認証', totp: 'OTP認証' },
  kanekakenpo: {
    passkey: '生体認証',
    totp: 'ワンタイムパスワード認証（アプリ）',
    email_otp: 'ワンタイムパスワード認証（メール）',
  },
};

/** The society a page is on (`<slug>.localhost` or `www.<slug>.localhost`), or a slug itself. */
export function slugOf(pageOrSlug) {
  if (typeof pageOrSlug === 'string') return pageOrSlug;
  return new URL(pageOrSlug.url()).hostname.replace(/^www\./, '').split('.')[0];
}

/** What `slug` (or the society of a page) calls `method` ('passkey', 'totp', 'email_otp'). */
export function methodLabel(pageOrSlug, method) {
  const slug = slugOf(pageOrSlug);
  const label = METHOD_LABELS[slug]?.[method];
  if (!label) throw new Error(`methodLabel: ${slug} offers no method ${method}`);
  return label;
}

/**
 * `text` in the words of `slug`'s screens (or those of a page's society): kanekakenpo
 * writes 「ユーザID」 without a space everywhere, daiwakenpo keeps 「ユーザ ID」.
 */
export function worded(pageOrSlug, text) {
  switch (slugOf(pageOrSlug)) {
    // 「ユーザIDは従来より変更ございません」
    case 'kanekakenpo':
      return text.replaceAll('ユーザ ID', 'ユーザID');
    // The manual writes 認証方式 throughout.
    case 'daiwakenpo':
      return text.replaceAll('認証方法', '認証方式');
    default:
      return text;
  }
}

/** The user ID field of the login page and the first login's 「ユーザ IDの変更」. */
export function userIdField(page, slug = slugOf(page)) {
  return page.getByLabel(worded(slug, 'ユーザ ID'), { exact: true });
}

let serial = 0;

/**
 * A user ID nobody in this test process has used yet: 8–13 characters of
 * [a-z0-9-_.@], with some upper case letters (the portal lower-cases them).
 * `prefix` should be 2–4 letters.
 */
export function uniqueUserId(prefix = 'Mb') {
  serial += 1;
  const tail = `${process.pid % 1000}${serial}`.slice(-6);
  return `${prefix}-${tail}X`.padEnd(8, 'Z').slice(0, 13);
}

/** A valid password (8–64, allowed characters, not a common one) unique to this process. */
export function uniquePassword(word = 'Sakura') {
  serial += 1;
  return `Kenpo#${serial}-${word}!${process.pid % 100}`;
}

/** The login page from the top page's 「ログイン」, then user ID + password → 「ログイン」. */
export async function submitLogin(page, portal, slug, userId, password) {
  await page.goto(portal.url(slug));
  await page.getByRole('link', { name: 'ログイン', exact: true }).click();
  await userIdField(page, slug).fill(userId);
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();
}

/**
 * The top page of a signed-in member: their name top right (a link that leads to the
 * logout question). Resolves to that link.
 */
export async function expectTopPage(page, name) {
  const link = page.getByRole('link', { name, exact: true });
  await link.waitFor();
  await page.getByRole('heading', { name: 'サービスメニュー' }).waitFor();
  return link;
}

/**
 * A daily login: password, then (when `totpKey` is given) a fresh code from the
 * authenticator app 「トップページへ」; ends on the top page with the member's name.
 */
export async function login(page, portal, slug, userId, password, name, totpKey) {
  await submitLogin(page, portal, slug, userId, password);
  if (totpKey) await enterCode(page, totpKey);
  if (name) await expectTopPage(page, name);
}

/** The one-time password step of a login: a fresh code 「トップページへ」. */
export async function enterCode(page, totpKey) {
  await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await freshCode(totpKey));
  await page.getByRole('button', { name: 'トップページへ' }).click();
}

/** 2-2: tap the name → 「ログアウトしてもよろしいですか？」 → 「ログアウトする」 → 「ログイン」 again. */
export async function logout(page, name) {
  await page.getByRole('link', { name, exact: true }).click();
  await page.getByText('ログアウトしてもよろしいですか？').waitFor();
  await page.getByRole('button', { name: 'ログアウトする' }).click();
  await page.getByRole('link', { name: 'ログイン', exact: true }).waitFor();
}

/** An item of the member menu (「プロフィール変更」, 「ログイン方法変更」), opening the menu first if it is folded. */
export async function openMenuItem(page, name) {
  const item = page.getByRole('link', { name, exact: true });
  if (!(await item.isVisible())) {
    const toggle = page.getByRole('button', { name: 'メニュー' });
    if (await toggle.isVisible()) await toggle.click();
  }
  await item.click();
}

/**
 * Journey 1 (first login) with the letter's temporary credentials, on the happy path:
 * 生年月日 → 利用規約 「同意する」 → new user ID + a method (`options.method`: 'totp' (the
 * default), 'passkey', 'email_otp', or the label itself) 「実行」 → new password twice 「送信」 → e-mail
 * 「送信」 (and, for a tenant that confirms the address by link, the link from the mail)
 * → the method's set-up → top page with the member's name.
 *
 * The authenticator app is registered here (registerApp); any other method's set-up page
 * is walked by `options.setUp(page, {shot, address})`.
 *
 * Resolves to { userId, password, totpKey, setUp }: the ID as the portal stores it (lower
 * case), the member's new password, the app's key (if the app was set up) and what
 * `options.setUp` resolved to. `shot(step)` (optional) is called at each step for a
 * screenshot.
 */
export async function firstLogin(page, portal, slug, member, options = {}) {
  const typedUserId = options.userId ?? uniqueUserId();
  const password = options.password ?? uniquePassword();
  const shot = options.shot ?? (async () => {});
  const startedAt = Date.now();

  await submitLogin(page, portal, slug, member.user_id, member.password);

  await page.getByLabel('生年月日').fill(member.birthDate);
  await page.getByRole('button', { name: '次へ' }).click();

  await page.getByRole('button', { name: '同意する' }).click();

  const method = options.method ?? 'totp';
  await userIdField(page, slug).fill(typedUserId);
  await page
    .getByRole('radio', { name: METHOD_LABELS[slug]?.[method] ? methodLabel(slug, method) : method, exact: true })
    .check();
  await page.getByRole('button', { name: '実行' }).click();

  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByLabel('パスワード確認用').fill(password);
  await page.getByRole('button', { name: '送信' }).click();

  const email = page.getByLabel('メールアドレス');
  await email.waitFor();
  const address = await email.inputValue();
  await page.getByRole('button', { name: '送信' }).click();

  // A tenant that confirms the address by link (kaneka 【6】【7】): open the link the
  // portal mailed, then 「更新」 on the page that waits for it.
  const refresh = page.getByRole('link', { name: '更新', exact: true });
  // The set-up page of the method chosen at ⑦: the app, a passkey or the mailed code.
  const setup = page.getByRole('heading', { name: SETUP_HEADINGS });
  const top = page.getByRole('link', { name: member.name, exact: true });
  await refresh.or(setup).or(top).first().waitFor();
  if (await refresh.isVisible()) {
    await shot('first-login-after-email');
    const mail = await waitForMail(portal, { to: address, since: startedAt, timeoutMs: 10_000 });
    const link = mail && findLink(mail.text, slug);
    if (!link) {
      throw new Error(
        `first login on ${slug}: no mail with a link reached ${address} ` +
          `in ${path.join(portal.dataDir, 'mail')}`,
      );
    }
    const inbox = await page.context().newPage();
    await inbox.goto(link);
    await inbox.getByText('メールアドレスの確認が完了しました。').waitFor();
    await inbox.close();
    await refresh.click();
  }

  // The method chosen at ⑦ is set up next: the authenticator app (2-4) unless
  // `options.setUp(page, {shot, address})` walks another one (its result is returned as `setUp`).
  let totpKey;
  let setUp;
  await setup.or(top).first().waitFor();
  if (await setup.isVisible()) {
    if (options.setUp) setUp = await options.setUp(page, { shot, address });
    else ({ key: totpKey } = await registerApp(page, { shot }));
  }
  await expectTopPage(page, member.name);
  await shot('first-login-top');
  return { userId: typedUserId.toLowerCase(), password, totpKey, setUp };
}

/** The headings of the set-up pages of the three methods. */
const SETUP_HEADINGS = /^(ワンタイムパスワード設定|セキュリティキー登録|メール認証)$/;

// --- the operator CLI ------------------------------------------------------------------------

/** The environment `portal` CLI commands need to reach `portal`'s database. */
function cliEnv(portal) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PORTAL_')));
  return Object.assign(env, {
    PORTAL_DATA_DIR: portal.dataDir,
    PORTAL_THEMES_DIR: path.join(repoRoot, 'themes'),
    PORTAL_ADMIN_UI_DIR: path.join(repoRoot, 'admin-ui'),
    PORTAL_DEMO: 'false',
    PORTAL_TENANTS_DIR: portal.tenantsDir ?? path.join(repoRoot, 'tenants'),
    NO_COLOR: '1',
  });
}

/** Runs `portal <args>` against the running portal's database; resolves to {stdout, stderr}. */
export function portalCli(portal, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(portalBinary, args, { env: cliEnv(portal), cwd: portal.dataDir }, (error, stdout, stderr) => {
      if (error) {
        error.message += `\nportal ${args.join(' ')}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
        reject(error);
      } else {
        resolve({ stdout, stderr });
      }
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

/** A TOML basic string (double-quoted) or, with line breaks, a multi-line basic string. */
function tomlString(text) {
  const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return text.includes('\n') ? `"""\n${escaped}"""` : `"${escaped}"`;
}

/**
 * Journey 13, the operator's side: `portal tenant export <slug>`, append a new
 * [[terms.versions]] and make it `current` under [terms], `portal tenant apply -`.
 * Then waits `settleMs` so that the running server (which re-reads tenants every
 * PORTAL_TENANT_REFRESH_MS) serves it.
 */
export async function publishTerms(portal, slug, { version, publishedAt, title, body, settleMs = 1_500 }) {
  const { stdout } = await portalCli(portal, ['tenant', 'export', slug]);
  const lines = stdout.split('\n');
  let section = '';
  let replaced = false;
  const edited = lines.map((line) => {
    const header = line.match(/^\s*\[\[?([^\]]+)\]\]?\s*$/);
    if (header) section = header[1].trim();
    if (section === 'terms' && /^\s*current\s*=/.test(line)) {
      replaced = true;
      return `current = ${tomlString(version)}`;
    }
    return line;
  });
  if (!replaced) {
    throw new Error(`portal tenant export ${slug}: no \`current = …\` under [terms]:\n${stdout}`);
  }
  const text = `${edited.join('\n').trimEnd()}\n\n[[terms.versions]]\nversion = ${tomlString(version)}\n` +
    `published_at = ${tomlString(publishedAt)}\ntitle = ${tomlString(title)}\nbody = ${tomlString(body)}\n`;
  await portalCli(portal, ['tenant', 'apply', '-'], text);
  await sleep(settleMs);
  return text;
}

/**
 * The operator changes plain values of a tenant: `portal tenant export <slug>`, each
 * `'section.key': value` of `values` replaced (e.g. {'session.step_up_max_age_minutes': 0}),
 * `portal tenant apply -`. Then waits `settleMs` for the running server to re-read tenants
 * (start it with a short PORTAL_TENANT_REFRESH_MS).
 */
export async function setTenantValues(portal, slug, values, { settleMs = 1_000 } = {}) {
  const { stdout } = await portalCli(portal, ['tenant', 'export', slug]);
  const pending = new Set(Object.keys(values));
  let section = '';
  const edited = stdout.split('\n').map((line) => {
    const header = line.match(/^\s*\[\[?([^\]]+)\]\]?\s*$/);
    if (header) section = header[1].trim();
    const assignment = line.match(/^\s*([A-Za-z0-9_]+)\s*=/);
    const name = assignment && `${section}.${assignment[1]}`;
    if (!name || !pending.has(name)) return line;
    pending.delete(name);
    const value = values[name];
    return `${assignment[1]} = ${typeof value === 'string' ? tomlString(value) : JSON.stringify(value)}`;
  });
  if (pending.size > 0) {
    throw new Error(`portal tenant export ${slug}: no ${[...pending].join(', ')}:\n${stdout}`);
  }
  await portalCli(portal, ['tenant', 'apply', '-'], edited.join('\n'));
  await sleep(settleMs);
}

// --- mail the portal wrote ---------------------------------------------------------------------

function decodePart(headers, body) {
  const encoding = (headers.match(/^content-transfer-encoding:\s*(\S+)/im)?.[1] ?? '7bit').toLowerCase();
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

/** Headers and the decoded text of every leaf part of a raw RFC 5322 message. */
function parseMessage(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = split < 0 ? raw : raw.slice(0, split);
  const body = split < 0 ? '' : raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const boundary = unfolded.match(/boundary="?([^";\r\n]+)"?/i)?.[1];
  if (!boundary) return { headers: unfolded, text: decodePart(unfolded, body) };
  const parts = body.split(`--${boundary}`).slice(1).filter((p) => !p.startsWith('--'));
  return { headers: unfolded, text: parts.map((p) => parseMessage(p.replace(/^\r?\n/, '')).text).join('\n') };
}

/** Every mail the portal wrote to <dataDir>/mail/ for `to`, oldest first: {file, headers, text, mtimeMs}. */
export async function mailsTo(portal, to) {
  const dir = path.join(portal.dataDir, 'mail');
  const names = await readdir(dir).catch(() => []);
  const mails = [];
  for (const name of names.filter((n) => n.endsWith('.eml'))) {
    const file = path.join(dir, name);
    const raw = await readFile(file, 'utf8');
    const { headers, text } = parseMessage(raw);
    const recipient = headers.match(/^to:\s*(.*)$/im)?.[1] ?? '';
    if (recipient.toLowerCase().includes(to.toLowerCase())) mails.push({ file, headers, text });
  }
  return mails;
}

/** Polls for a mail to `to` written after `since` (ms since the epoch); resolves to it or null. */
export async function waitForMail(portal, { to, since = 0, timeoutMs = 10_000 }) {
  const { stat } = await import('node:fs/promises');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mails = await mailsTo(portal, to);
    for (const mail of mails.reverse()) {
      const { mtimeMs } = await stat(mail.file);
      if (mtimeMs >= since - 1_000) return mail;
    }
    if (Date.now() > deadline) return null;
    await sleep(200);
  }
}

/** The first http(s) link in `text` that points at the tenant's host. */
export function findLink(text, slug) {
  const links = text.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
  return links.find((l) => new URL(l).hostname.startsWith(`${slug}.`)) ?? null;
}
