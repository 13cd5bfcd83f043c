// 「管理者」 in Chromium, by visible labels, on a laptop and a tablet: an admin's own row
// offers no change (another admin must make it); a locked admin is unlocked by another admin
// after a confirmation page that names them, and signs in again with the same password and
// app; 「二要素認証リセット」 sends them a fresh invitation, their old password opens nothing,
// and the link sets a new password and app. Screenshots: target/screenshots/admins-*.png

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ADMIN_PASSWORD, inviteAdmin, openConsoleMenu } from './lib/console.mjs';
import { launchBrowser, newPage, screenshot, startPortal } from './lib/server.mjs';
import { freshCode } from './lib/totp.mjs';
import { waitForMail } from './lib/mailbox.mjs';

const SLUG = 'daiwakenpo';
const SCREENS = {
  laptop: { viewport: { width: 1280, height: 800 } },
  tablet: { viewport: { width: 820, height: 1180 }, hasTouch: true },
};

let portal;
let browser;

before(async () => {
  portal = await startPortal();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await portal?.stop();
});

/** The console's sign-in: address, password 「ログイン」. */
async function passwordStep(page, email, password) {
  await page.goto(portal.url(SLUG, '/admin/login'));
  await page.getByLabel('メールアドレス').fill(email);
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();
}

for (const [screen, options] of Object.entries(SCREENS)) {
  test(`another admin unlocks a locked admin and resets their factors (${screen})`, async () => {
    const shot = (name) => screenshot(boss, `admins-${screen}-${name}`);
    const boss = await newPage(browser, options);
    const desk = await newPage(browser, options);
    const tag = `${screen}.${process.pid}`;
    const bossEmail = `boss.${tag}@daiwa.example.jp`;
    const deskEmail = `desk.${tag}@daiwa.example.jp`;
    await inviteAdmin(portal, boss, SLUG, bossEmail);
    const { key } = await inviteAdmin(portal, desk, SLUG, deskEmail);

    // desk locks themselves out with wrong passwords (daiwakenpo: five).
    await desk.getByRole('button', { name: 'ログアウト' }).click();
    for (let i = 0; i < 5; i += 1) {
      await passwordStep(desk, deskEmail, 'Wrong-password-2026!');
    }
    await passwordStep(desk, deskEmail, ADMIN_PASSWORD);
    await desk.getByText('ロックされています').first().waitFor();

    // 「管理者」: one's own row has no form; desk's row says ロック中 and offers both actions.
    await openConsoleMenu(boss, '管理者');
    const own = boss.getByRole('row').filter({ hasText: bossEmail });
    await own.getByText('ほかの「管理者」が変更します').waitFor();
    assert.equal(await own.getByRole('button').count(), 0);
    const row = boss.getByRole('row').filter({ hasText: deskEmail });
    await row.getByText('ロック中').waitFor();
    await shot('list');
    await row.getByRole('link', { name: new RegExp(`^ロック解除`) }).click();
    await boss.getByRole('heading', { name: '管理者のロック解除', level: 1 }).waitFor();
    await boss.getByText(deskEmail).first().waitFor();
    await shot('unlock-confirm');
    await boss.getByRole('button', { name: 'ロック解除する', exact: true }).click();
    await boss.getByRole('status').getByText(`${deskEmail} さんのロックを解除しました。`).waitFor();

    // desk is told by mail and signs in with the same password and app.
    const mail = await waitForMail(portal, deskEmail, 'ロックを解除しました');
    assert.match(mail, new RegExp(bossEmail.replace(/[.+]/g, '\\$&')));
    await passwordStep(desk, deskEmail, ADMIN_PASSWORD);
    await desk.getByLabel('ワンタイムパスワード').fill(await freshCode(key));
    await desk.getByRole('button', { name: 'ログイン', exact: true }).click();
    await desk.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();

    // 「二要素認証リセット」: desk's session ends, a fresh invitation is mailed.
    await openConsoleMenu(boss, '管理者');
    await boss.getByRole('row').filter({ hasText: deskEmail })
      .getByRole('link', { name: /^二要素認証リセット/ }).click();
    await boss.getByRole('heading', { name: '管理者の二要素認証リセット', level: 1 }).waitFor();
    await shot('reset-confirm');
    await boss.getByRole('button', { name: '二要素認証をリセットする', exact: true }).click();
    await boss.getByRole('status').getByText(`${deskEmail} さんの二要素認証をリセットし`).waitFor();
    await boss.getByRole('row').filter({ hasText: deskEmail }).getByText('招待中').waitFor();
    await shot('after-reset');
    await desk.reload();
    await desk.getByRole('heading', { name: '管理者ログイン', level: 1 }).waitFor();
    await passwordStep(desk, deskEmail, ADMIN_PASSWORD);
    await desk.getByText('メールアドレスまたはパスワードが正しくありません').waitFor();

    const reset = await waitForMail(portal, deskEmail, '二要素認証（認証アプリ・パスキー）をリセットしました');
    const link = reset.match(/https?:\/\/\S+\/admin\/invite\?token=[0-9a-f]{64}/)[0];
    await desk.goto(link.replace(/^https?:\/\/[^/]+/, portal.url(SLUG, '')));
    await desk.getByText(deskEmail).waitFor();
    await desk.getByLabel('パスワード', { exact: true }).fill('Second-console-pass-2026!');
    await desk.getByLabel('パスワード確認用').fill('Second-console-pass-2026!');
    await desk.getByRole('button', { name: 'パスワードを設定' }).click();
    await desk.getByText('スキャンできませんか？').click();
    const newKey = (await desk.locator('#totp-key').textContent()).trim();
    assert.notEqual(newKey, key);
    await desk.getByLabel('デバイス名').fill('新しいスマホ');
    await desk.getByLabel('認証コード').fill(await freshCode(newKey));
    await desk.getByRole('button', { name: '実行' }).click();
    await desk.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();

    await boss.context().close();
    await desk.context().close();
  });
}
