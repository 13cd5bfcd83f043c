// Journey 4 of SPEC §3 (manual 2-4): first login choosing the authenticator app, the
// QR code (decoded with zbarimg) and 「スキャンできませんか？」 key, 「デバイス名」 + code
// (oathtool) 「実行」, then logout and a daily login with a fresh code 「トップページへ」.
// Both tenants, phone and desktop. Screenshots: target/screenshots/totp-*.png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { expectTopPage, firstLogin, logout, submitLogin } from './lib/journeys.mjs';
import { addMember } from './lib/members.mjs';
import { newPage, screenshot } from './lib/server.mjs';
import { TENANTS, VIEWPORTS, sharedPortal } from './lib/suite.mjs';
import { totpCode } from './lib/totp.mjs';

const shared = sharedPortal();

for (const [viewportName, viewport] of Object.entries(VIEWPORTS)) {
  for (const { slug } of TENANTS) {
    test(`authenticator app set-up and login on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
      const { portal, browser } = shared;
      const member = await addMember(portal, slug);
      const page = await newPage(browser, viewport);
      const shot = (step) => screenshot(page, `totp-${slug}-${viewportName}-${step}`);
      try {
        const { userId, password, totpKey } = await firstLogin(page, portal, slug, member, { shot });
        assert.ok(totpKey, 'first login went through the authenticator set-up');
        await logout(page, member.name);

        // Daily login: password, then the app's code. A wrong code first.
        await submitLogin(page, portal, slug, userId, password);
        const code = page.getByLabel('ワンタイムパスワード', { exact: true });
        await code.waitFor();
        assert.equal(await code.getAttribute('autocomplete'), 'one-time-code');
        assert.equal(await code.getAttribute('inputmode'), 'numeric');
        const now = await totpCode(totpKey);
        await code.fill(now === '123456' ? '654321' : '123456');
        await page.getByRole('button', { name: 'トップページへ' }).click();
        await page.getByRole('alert').filter({ hasText: 'ワンタイムパスワードが正しくありません' }).waitFor();
        await shot('otp-wrong');
        // The code of the set-up is spent: the app's next code is accepted (±1 step).
        await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await totpCode(totpKey, 30));
        await page.getByRole('button', { name: 'トップページへ' }).click();
        await expectTopPage(page, member.name);
        await shot('otp-top');
      } finally {
        await page.context().close();
      }
    });
  }
}
