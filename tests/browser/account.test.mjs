// Self-service journeys of SPEC §3 as a member follows the manual, each starting from a
// member who finished the first login (lib/journeys.mjs firstLogin):
//   6  change user ID      [3-1]  「プロフィール変更」 → 「ユーザ ID」 → 「変更」 → 「ポータルに戻る」
//   7  change password     [3-2]  「ログイン方法変更」 → 「更新」 → (re-auth) → 「実行」
//   14 lockout             [FAQ Q5, Q6] five wrong passwords, then the right one is refused
//   13 updated terms       [3-8]  the operator publishes a new version; the member must 「同意する」
// Both tenants, phone and desktop. Journey 13 runs last: it changes the tenant that every
// test of this file's portal shares. Screenshots:
// target/screenshots/account-<journey>-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import {
  INVALID_CREDENTIALS,
  expectTopPage,
  enterCode,
  login,
  logout,
  openMenuItem,
  publishTerms,
  submitLogin,
  uniquePassword,
  uniqueUserId,
  userIdField,
  worded,
} from './lib/journeys.mjs';
import { repoRoot } from './lib/server.mjs';
import { VIEWPORTS, closing, newMember, sharedPortal, tenantsWith } from './lib/suite.mjs';

/** The society's contact text, as its tenant file states it. */
function contactOf(slug) {
  const text = readFileSync(path.join(repoRoot, 'tenants', `${slug}.toml`), 'utf8');
  const m = text.match(/^contact\s*=\s*"((?:[^"\\]|\\.)*)"\s*$/m);
  assert.ok(m, `tenants/${slug}.toml has a contact`);
  return JSON.parse(`"${m[1]}"`);
}

const TENANTS = tenantsWith((t) => ({ contact: contactOf(t.slug) }));

const LOCKED = 'アカウントがロックされています。ご加入の健保組合までお問い合わせください。';

/** Today's date in Japan, as the portal shows dates: YYYY/MM/DD. */
function todayInJapan() {
  return new Intl.DateTimeFormat('ja-JP', {
    timeZone: 'Asia/Tokyo',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(new Date());
}

// Journey 13 publishes new terms: the portal re-reads tenants every 100 ms.
const shared = sharedPortal({ env: { PORTAL_TENANT_REFRESH_MS: '100' } });

/**
 * Runs `body` with a fresh browser context on `viewportName` and a member of `tenant`
 * who has just finished the first login (on the top page); body gets newMember's member.
 */
async function asMember(tenant, viewportName, journey, body) {
  const m = await newMember(shared, tenant, viewportName, `account-${journey}`);
  await closing([m], () => body(m));
}

/** A button or a link with that visible name (「更新」 is a link that looks like a button). */
function control(page, name) {
  return page.getByRole('button', { name, exact: true }).or(page.getByRole('link', { name, exact: true }));
}

function alertWith(page, text) {
  return page.getByRole('alert').filter({ hasText: text });
}

const combos = [];
for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) combos.push({ viewportName, tenant });
}

for (const { viewportName, tenant } of combos) {
  const { slug } = tenant;

  test(`journey 6: change user ID on ${slug} (${viewportName})`, { timeout: 60_000 }, async () => {
    await asMember(tenant, viewportName, 'j6', async ({ page, shot, member, userId, password, totpKey }) => {
      // ①② top page → 「プロフィール変更」
      await openMenuItem(page, 'プロフィール変更');
      await page.getByRole('heading', { name: 'プロフィール変更' }).waitFor();
      const main = page.getByRole('main');
      await main.getByText('ユーザー名', { exact: true }).waitFor();
      await main.getByText(member.name, { exact: true }).waitFor();
      const field = userIdField(page, slug);
      assert.equal(await field.inputValue(), userId, 'the field shows the current user ID');
      await shot('1-profile');

      // ③ a new ID with upper case letters → 「変更」
      const typed = uniqueUserId('Chg');
      assert.notEqual(typed, typed.toLowerCase());
      await field.fill(typed);
      await shot('2-typed');
      await page.getByRole('button', { name: '変更', exact: true }).click();
      await page.getByText(worded(slug, 'ユーザ IDを変更しました。')).waitFor();
      assert.equal(await userIdField(page, slug).inputValue(), typed.toLowerCase(), 'stored lower-cased');
      await shot('3-changed');

      // ④ 「ポータルに戻る」 → the top page
      await control(page, 'ポータルに戻る').click();
      await expectTopPage(page, member.name);
      await shot('4-top');

      // The new ID logs in; the old one is gone.
      await logout(page, member.name);
      await login(page, shared.portal, slug, typed.toLowerCase(), password, member.name, totpKey);
      await shot('5-login-new-id');
      assert.notEqual(userId, typed.toLowerCase());
    });
  });

  test(`journey 7: change password on ${slug} (${viewportName})`, { timeout: 60_000 }, async () => {
    await asMember(tenant, viewportName, 'j7', async ({ page, shot, member, userId, password, totpKey }) => {
      // ①② top page → 「ログイン方法変更」; ③ the password's creation date
      await openMenuItem(page, 'ログイン方法変更');
      await page.getByRole('heading', { name: 'ログイン方法変更' }).waitFor();
      const created = page.locator('#password-created');
      const before = (await created.textContent()).trim();
      assert.match(before, /^\d{4}\/\d{2}\/\d{2}$/, 'creation date as YYYY/MM/DD');
      await shot('1-methods');

      // 「更新」 → (④ 「続行する際には再度認証してください。」 → password → 「ログイン」)
      await control(page, '更新').click();
      const confirm = page.getByLabel('パスワード確認用');
      const reauth = page.getByText('続行する際には再度認証してください。');
      await confirm.or(reauth).first().waitFor();
      if (await reauth.isVisible()) {
        await shot('2-reauth');
        await page.getByLabel('パスワード', { exact: true }).fill(password);
        await page.getByRole('button', { name: 'ログイン', exact: true }).click();
        await confirm.waitFor();
      }
      await shot('3-form');

      // ⑥ the current password is refused
      await page.getByLabel('パスワード', { exact: true }).fill(password);
      await confirm.fill(password);
      await page.getByRole('button', { name: '実行', exact: true }).click();
      await alertWith(page, '現在のパスワードと同じパスワードには変更できません。').waitFor();
      await shot('4-same-refused');

      // a new one is taken → ⑦ back on 「ログイン方法変更」 with the creation date
      const newPassword = uniquePassword('Momiji');
      await page.getByLabel('パスワード', { exact: true }).fill(newPassword);
      await page.getByLabel('パスワード確認用').fill(newPassword);
      await page.getByRole('button', { name: '実行', exact: true }).click();
      await page.getByRole('heading', { name: 'ログイン方法変更' }).waitFor();
      await page.getByText('パスワードを更新しました。').waitFor();
      assert.equal((await created.textContent()).trim(), todayInJapan(), 'created today (JST)');
      await shot('5-updated');

      // Log out; the old password is refused, the new one logs in.
      await logout(page, member.name);
      await submitLogin(page, shared.portal, slug, userId, password);
      await alertWith(page, worded(slug, INVALID_CREDENTIALS)).waitFor();
      await shot('6-old-refused');
      await login(page, shared.portal, slug, userId, newPassword, member.name, totpKey);
      await shot('7-login-new-password');
    });
  });

  test(`journey 14: lockout on ${slug} (${viewportName})`, { timeout: 60_000 }, async () => {
    await asMember(tenant, viewportName, 'j14', async ({ page, shot, member, userId, password, totpKey }) => {
      await logout(page, member.name);
      for (let i = 1; i <= 5; i += 1) {
        await submitLogin(page, shared.portal, slug, userId, `${password}-wrong${i}`);
        await alertWith(page, worded(slug, INVALID_CREDENTIALS)).waitFor();
        assert.equal(await page.getByText(LOCKED).count(), 0, `not yet told of a lock after ${i} failures`);
        if (i === 1 || i === 5) await shot(`1-wrong-${i}`);
      }
      // The right password now: locked, and who to call.
      await submitLogin(page, shared.portal, slug, userId, password);
      const alert = alertWith(page, LOCKED);
      await alert.waitFor();
      await alert.getByText(tenant.contact, { exact: true }).waitFor();
      assert.equal(await page.getByRole('link', { name: member.name }).count(), 0, 'not signed in');
      await shot('2-locked');
    });
  });
}

// Journey 13 last: a new terms version changes the tenant for every later test. The two
// tenants run side by side (each login after the app's set-up may wait for a fresh TOTP
// step, up to 30 s); the two tests of one tenant never overlap.
let termsSerial = 0;
for (const viewportName of Object.keys(VIEWPORTS)) {
  describe(`journey 13 (${viewportName})`, { concurrency: TENANTS.length }, () => {
    for (const tenant of TENANTS) {
      journey13(viewportName, tenant);
    }
  });
}

function journey13(viewportName, tenant) {
  const { slug } = tenant;
  test(`journey 13: updated terms on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
    await asMember(tenant, viewportName, 'j13', async ({ page, shot, member, userId, password, totpKey }) => {
      await logout(page, member.name);

      termsSerial += 1;
      const version = `2026-11-${viewportName}-${termsSerial}`;
      const marker = `改定第${termsSerial}版`;
      const body = `第1条（改定の趣旨）\n本規約は${marker}として、個人情報の取扱いに関する条項を見直しました。\n\n第2条（施行日）\n改定後の規約は2026年11月1日から適用します。`;
      await publishTerms(shared.portal, slug, { version, publishedAt: '2026-11-01', title: '利用規約（改定）', body });

      // ①② 「ログイン」 → ID and password → ⑤ the new terms → 「同意する」
      await submitLogin(page, shared.portal, slug, userId, password);
      await enterCode(page, totpKey);
      await page.getByRole('heading', { name: '利用規約（改定）' }).waitFor();
      await page.getByText(`本規約は${marker}として、個人情報の取扱いに関する条項を見直しました。`).waitFor();
      await page.getByText(/2026.11.01|2026年11月1日/).first().waitFor();
      await shot('1-new-terms');
      await page.getByRole('button', { name: '同意する' }).click();

      // ⑥ the top page with the services
      await expectTopPage(page, member.name);
      await shot('2-top');

      // Accepted once: the next login goes straight to the top page.
      await logout(page, member.name);
      await submitLogin(page, shared.portal, slug, userId, password);
      await enterCode(page, totpKey);
      await expectTopPage(page, member.name);
      assert.equal(await page.getByRole('button', { name: '同意する' }).count(), 0);
      await shot('3-next-login');
    });
  });
}
