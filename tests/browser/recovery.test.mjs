// Journey 9 of SPEC §3 (manual 3-4): a member who forgot the user ID taps 「ログイン」, then
// 「ユーザ IDを忘れた方はこちら」, types 「生年月日」 and 「メールアドレス」 and 「実行」; the page
// says to check the mail, and the mail from the society lists the user ID, which then
// signs in. A wrong birth date gets the same page and no mail. Both societies, phone and
// desktop. Screenshots: target/screenshots/recovery-j9-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';

import { subjectOf } from './lib/inbox.mjs';
import { logout, userIdField, worded } from './lib/journeys.mjs';
import { TENANTS, VIEWPORTS, closing, newMember, sharedPortal } from './lib/suite.mjs';

const shared = sharedPortal();

/** From the top page: 「ログイン」 → 「ユーザ IDを忘れた方はこちら」 → the two fields → 「実行」. */
async function askForUserId(page, portal, slug, { birthDate, email, shot = async () => {} }) {
  await page.goto(portal.url(slug, '/'));
  await page.getByRole('link', { name: 'ログイン', exact: true }).click();
  await page.getByRole('link', { name: worded(slug, 'ユーザ IDを忘れた方はこちら') }).click();
  await page.getByRole('heading', { name: worded(slug, 'ユーザ ID案内メール送信') }).waitFor();
  await page.getByLabel('生年月日').fill(birthDate);
  await page.getByLabel('メールアドレス').fill(email);
  await shot('form');
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByRole('status').filter({ hasText: '受け付けました' }).waitFor();
  return page.textContent('main');
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) {
    test(`journey 9: a forgotten user ID arrives by mail on ${tenant.slug} (${viewportName})`, { timeout: 90_000 }, async () => {
      const m = await newMember(shared, tenant, viewportName, 'recovery-j9');
      await closing([m], async () => {
        const { page, shot, member, inbox, userId, password } = m;
        const portal = shared.portal;
        await logout(page, member.name);

        // A wrong birth date first: the same page, and no mail.
        const wrong = await askForUserId(page, portal, tenant.slug, { birthDate: '1901-01-01', email: member.email });
        await sleep(1_500);
        assert.deepEqual(await inbox.take(worded(tenant.slug, 'ユーザ IDのご案内')), [], 'no mail for a wrong birth date');

        const subject = worded(tenant.slug, 'ユーザ IDのご案内');
        const right = await askForUserId(page, portal, tenant.slug, { birthDate: member.birthDate, email: member.email, shot });
        assert.equal(right, wrong, 'the page does not tell whether anything matched');
        await shot('sent');
        const mail = await inbox.next({ subject });
        assert.ok(subjectOf(mail).includes(subject));
        assert.ok(mail.text.toLowerCase().includes(userId.toLowerCase()), `the user ID in:\n${mail.text}`);

        // The user ID from the mail signs in.
        await page.getByRole('link', { name: 'ログイン画面へ戻る' }).click();
        await userIdField(page).fill(userId);
        await page.getByLabel('パスワード', { exact: true }).fill(password);
        await page.getByRole('button', { name: 'ログイン', exact: true }).click();
        await page.waitForURL((url) => !url.pathname.endsWith('/login'));
        await shot('signed-in-step');
      });
    });
  }
}
