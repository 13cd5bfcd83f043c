// Journeys 1 and 2 of SPEC §3 as a member follows the manuals: first login with the
// letter's temporary ID (生年月日 → 利用規約 → ユーザ ID and method → パスワード →
// メールアドレス → the authenticator app → top page with the name and the service icons),
// then logout, then a daily login with the new credentials and a one-time password. Both tenants, phone and desktop. Screenshots:
// target/screenshots/first-login-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { INVALID_CREDENTIALS, methodLabel, userIdField, worded } from './lib/journeys.mjs';
import { waitForMail } from './lib/mailbox.mjs';
import { addMember } from './lib/members.mjs';
import { registerApp, totpCode } from './lib/totp.mjs';
import { newPage, screenshot } from './lib/server.mjs';
import { VIEWPORTS, sharedPortal, tenantsWith } from './lib/suite.mjs';

const TENANTS = tenantsWith({
  daiwakenpo: { services: ['健診予約', '医療費のお知らせ', '各種申請', 'ヘルスケアポイント'], methods: 2, confirmByLink: false },
  kanekakenpo: { services: ['お知らせ', '医療費通知', '健診・人間ドック'], methods: 3, confirmByLink: true },
});

const shared = sharedPortal();

let counter = 0;

for (const [viewportName, viewport] of Object.entries(VIEWPORTS)) {
  for (const { slug, services, methods, confirmByLink } of TENANTS) {
    test(`first login, logout and daily login on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
      const { portal, browser } = shared;
      const member = await addMember(portal, slug);
      counter += 1;
      const newUserId = `Taro-${viewportName.slice(0, 2)}${counter}X`; // upper case is lower-cased
      const newPassword = `Kenpo#${counter}-Sakura!`;
      const page = await newPage(browser, viewport);
      const shot = (step) => screenshot(page, `first-login-${slug}-${viewportName}-${step}`);
      try {
        // ① top page → 「ログイン」
        await page.goto(portal.url(slug));
        await page.getByRole('link', { name: 'ログイン', exact: true }).click();

        // ③ the letter's temporary ID and password → 「ログイン」
        await userIdField(page, slug).fill(member.user_id);
        await page.getByLabel('パスワード', { exact: true }).fill(member.password);
        await shot('1-login');
        await page.getByRole('button', { name: 'ログイン', exact: true }).click();

        // ⑤ 生年月日: a wrong date first
        await page.getByLabel('生年月日').fill('1990-01-01');
        await page.getByRole('button', { name: '次へ' }).click();
        await assert.doesNotReject(page.getByRole('alert').filter({ hasText: '生年月日が正しくありません。' }).waitFor());
        await page.getByLabel('生年月日').fill(member.birthDate);
        await shot('2-birth-date');
        await page.getByRole('button', { name: '次へ' }).click();

        // ⑥ 利用規約 → 「同意する」
        await page.getByRole('button', { name: '同意する' }).waitFor();
        await shot('3-terms');
        await page.getByRole('button', { name: '同意する' }).click();

        // ⑦ user ID and method; 「利用不可文字一覧を見る」 lists the forbidden characters
        const radios = page.getByRole('radio');
        assert.equal(await radios.count(), methods, `${slug} offers ${methods} methods`);
        await page.getByText('利用不可文字一覧を見る').click();
        await assert.doesNotReject(page.locator('.forbidden-list li').first().waitFor());
        await userIdField(page, slug).fill('ab');
        await page.getByRole('radio', { name: methodLabel(slug, 'totp'), exact: true }).check();
        await page.getByRole('button', { name: '実行' }).click();
        await assert.doesNotReject(page.getByRole('alert').filter({ hasText: '8文字以上' }).waitFor());
        await userIdField(page, slug).fill(newUserId);
        await page.getByRole('radio', { name: methodLabel(slug, 'totp'), exact: true }).check();
        await shot('4-user-id');
        await page.getByRole('button', { name: '実行' }).click();

        // ⑧ new password twice → 「送信」 (a mismatch first)
        await page.getByLabel('パスワード', { exact: true }).fill(newPassword);
        await page.getByLabel('パスワード確認用').fill(`${newPassword}x`);
        await page.getByRole('button', { name: '送信' }).click();
        await assert.doesNotReject(page.getByRole('alert').filter({ hasText: '一致しません' }).waitFor());
        await page.getByLabel('パスワード', { exact: true }).fill(newPassword);
        await page.getByLabel('パスワード確認用').fill(newPassword);
        await shot('5-password');
        await page.getByRole('button', { name: '送信' }).click();

        // ⑨ the e-mail address is shown and may be changed
        const email = page.getByLabel('メールアドレス');
        assert.equal(await email.inputValue(), member.email);
        const newEmail = `new${counter}.${member.email}`;
        await email.fill(newEmail);
        await shot('6-email');
        await page.getByRole('button', { name: '送信' }).click();

        if (confirmByLink) {
          // kaneka 【6】【7】: open the mailed link, return and press 「更新」.
          await page.getByText(newEmail).waitFor();
          await shot('6b-email-sent');
          const mail = await waitForMail(portal, newEmail, '/email/confirm?token=');
          const link = mail.match(/https?:\/\/\S+\/email\/confirm\?token=[0-9a-f]+/)[0];
          const inbox = await page.context().newPage();
          await inbox.goto(link);
          await inbox.getByText('メールアドレスの確認が完了しました。').waitFor();
          await inbox.close();
          await page.getByRole('link', { name: '更新' }).click();
        }

        // The method chosen at ⑦ is set up next: the authenticator app (2-4).
        const { key } = await registerApp(page, { shot });

        // ⑩ top page: the member's name top right, the society's services
        const name = page.getByRole('link', { name: member.name });
        await name.waitFor();
        const box = await name.boundingBox();
        assert.ok(box.x + box.width > viewport.viewport.width / 2 && box.y < 120, 'name at the top right');
        for (const title of services) {
          await assert.doesNotReject(page.getByRole('link', { name: title }).waitFor(), title);
        }
        // On a phone the member menu folds behind 「三本線」 at the top left (「メニュー」).
        const toggle = page.getByRole('button', { name: 'メニュー' });
        if (viewportName === 'phone') {
          const toggleBox = await toggle.boundingBox();
          assert.ok(toggleBox && toggleBox.x < viewport.viewport.width / 2 && toggleBox.y < 120, 'menu button at the top left');
          assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
          assert.equal(await page.getByRole('link', { name: 'プロフィール変更' }).isVisible(), false, 'menu folded');
          await toggle.click();
          assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
        } else {
          assert.equal(await toggle.isVisible(), false, 'no menu button on a PC');
        }
        assert.ok(await page.getByRole('link', { name: 'プロフィール変更' }).isVisible());
        assert.ok(await page.getByRole('link', { name: 'ログイン方法変更' }).isVisible());
        await shot('7-top');

        // 2-2: tap the name → 「ログアウトしてもよろしいですか？」 → 「ログアウトする」
        await name.click();
        await page.getByText('ログアウトしてもよろしいですか？').waitFor();
        await shot('8-logout');
        await page.getByRole('button', { name: 'ログアウトする' }).click();
        await page.getByRole('link', { name: 'ログイン', exact: true }).waitFor();
        assert.equal(await page.getByRole('link', { name: member.name }).count(), 0);

        // The temporary password no longer works; the new credentials do, straight to the top.
        await page.getByRole('link', { name: 'ログイン', exact: true }).click();
        await userIdField(page, slug).fill(member.user_id);
        await page.getByLabel('パスワード', { exact: true }).fill(member.password);
        await page.getByRole('button', { name: 'ログイン', exact: true }).click();
        await assert.doesNotReject(page.getByRole('alert').filter({ hasText: worded(slug, INVALID_CREDENTIALS) }).waitFor());
        await userIdField(page, slug).fill(newUserId);
        await page.getByLabel('パスワード', { exact: true }).fill(newPassword);
        await page.getByRole('button', { name: 'ログイン', exact: true }).click();
        await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await totpCode(key, 30));
        await page.getByRole('button', { name: 'トップページへ' }).click();
        await page.getByRole('link', { name: member.name }).waitFor();
        await shot('9-daily-login');
      } finally {
        await page.context().close();
      }
    });
  }
}
