// Journey 5 of SPEC §3 (kanekakenpo manual 【2-6】): first login choosing
// 「ワンタイムパスワード認証（メール）」; on 「メール認証」 the code mailed from the society's
// sender is typed into 「ワンタイムパスワード（6桁）」 「認証する」 (a wrong one first); daily
// login: password → the code of the new mail → top page; 「再送信」 before the society's
// cooldown is refused with the seconds left. kanekakenpo only (daiwakenpo does not offer
// mail), phone and desktop. The last test shortens the cooldown (the operator's
// `portal tenant apply`) to show that 「再送信」 mails a new code and the old one stops
// working. Screenshots: target/screenshots/email-otp-<case>-kanekakenpo-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { expectTopPage, logout, setTenantValues, submitLogin } from './lib/journeys.mjs';
import { TENANTS, VIEWPORTS, closing, newMember, sharedPortal } from './lib/suite.mjs';

const SLUG = 'kanekakenpo';
const TENANT = TENANTS.find((t) => t.slug === SLUG);
const WRONG_CODE = 'ワンタイムパスワードが正しくありません';
const CODE_FIELD = 'ワンタイムパスワード（6桁）';

// The last test changes the tenant: the portal re-reads tenants every 100 ms.
const shared = sharedPortal({ env: { PORTAL_TENANT_REFRESH_MS: '100' } });

/** A six-digit code that is not `code`. */
function otherThan(code) {
  return code === '000000' ? '111111' : '000000';
}

/** On 「メール認証」: `code` into 「ワンタイムパスワード（6桁）」 → 「認証する」. */
async function enterMailedCode(page, code) {
  await page.getByLabel(CODE_FIELD).fill(code);
  await page.getByRole('button', { name: '認証する' }).click();
}

function alertWith(page, text) {
  return page.getByRole('alert').filter({ hasText: text });
}

/**
 * A kanekakenpo member who finished the first login with the mailed code (a wrong code
 * first), on the top page. Resolves to newMember's member (page, member, userId, password,
 * inbox, shot, …).
 */
function emailMember(viewportName, label) {
  return newMember(shared, TENANT, viewportName, `email-otp-${label}`, {
    firstLogin: ({ inbox }) => ({
      method: 'email_otp',
      setUp: async (p, { shot: s }) => {
        await p.getByRole('heading', { name: 'メール認証' }).waitFor();
        const mail = await inbox.next({ subject: 'ワンタイムパスワードのお知らせ' });
        assert.match(mail.headers, /^from:.*@kosmo-web\.jp>?\s*$/im, "from the society's sender");
        const code = mail.text.match(/ワンタイムパスワード：(\d{6})\r?\n/)?.[1];
        assert.ok(code, `a six-digit code in:\n${mail.text}`);
        await s('email-otp-setup');
        await enterMailedCode(p, otherThan(code));
        const wrong = alertWith(p, WRONG_CODE);
        await wrong.waitFor();
        assert.equal(await p.getByLabel(CODE_FIELD).getAttribute('aria-invalid'), 'true');
        await s('email-otp-wrong');
        await enterMailedCode(p, code);
      },
    }),
  });
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  test(`journey 5: e-mail one-time password on ${SLUG} (${viewportName})`, { timeout: 60_000 }, async () => {
    const m = await emailMember(viewportName, 'j5');
    await closing([m], async () => {
      const { page, member, inbox, shot } = m;
      // The set-up told the member that メール認証 is now a second factor.
      const notice = await inbox.next({ subject: '二要素認証の追加のお知らせ' });
      assert.match(notice.text, /種類：メール認証/);

      // Daily login: password → 「メール認証」, a new code is mailed on the way.
      await logout(page, member.name);
      await submitLogin(page, shared.portal, SLUG, m.userId, m.password);
      await page.getByRole('heading', { name: 'メール認証' }).waitFor();
      // The page names the address only partly.
      const [local, domain] = member.email.split('@');
      await page.getByText(`${local.slice(0, 2)}***@${domain}`).waitFor();
      assert.equal(await page.getByText(member.email).count(), 0, 'the full address is not shown');
      const field = page.getByLabel(CODE_FIELD);
      assert.equal(await field.getAttribute('autocomplete'), 'one-time-code');
      assert.equal(await field.getAttribute('inputmode'), 'numeric');
      const code = await inbox.code();
      await shot('1-login-code');

      // 「再送信」 right away: the society's cooldown (60 s) is not over.
      await page.getByRole('button', { name: '再送信' }).click();
      const cooldown = page.getByRole('alert').filter({ hasText: /^再送信は(\d+)秒後にできます。しばらくお待ちください。$/ });
      await cooldown.waitFor();
      const left = Number((await cooldown.innerText()).match(/(\d+)秒後/)[1]);
      assert.ok(left > 40 && left <= 60, `${left} s left of a 60 s cooldown`);
      await shot('2-resend-too-early');

      // The code of the mail still works.
      await enterMailedCode(page, code);
      await expectTopPage(page, member.name);
      await shot('3-top');
      assert.deepEqual(
        (await inbox.take('ワンタイムパスワードのお知らせ')).map((mail) => mail.subject),
        [],
        'the refused 「再送信」 mailed nothing',
      );
    });
  });
}

// Last: changes the tenant for every later test of this portal.
test(`「再送信」 after the cooldown mails a new code and the old one stops working (${SLUG})`, { timeout: 60_000 }, async () => {
  const cooldownSeconds = 3;
  await setTenantValues(shared.portal, SLUG, { 'email_otp.resend_cooldown_seconds': cooldownSeconds });
  const m = await emailMember('phone', 'resend');
  await closing([m], async () => {
    const { page, member, inbox, shot } = m;
    await logout(page, member.name);
    await submitLogin(page, shared.portal, SLUG, m.userId, m.password);
    await page.getByRole('heading', { name: 'メール認証' }).waitFor();
    const first = await inbox.code();
    const resend = page.getByRole('button', { name: '再送信' });
    await resend.click();
    await alertWith(page, /再送信は[1-3]秒後にできます。/).waitFor();

    await new Promise((r) => setTimeout(r, cooldownSeconds * 1000 + 200));
    await resend.click();
    await page.getByRole('status').filter({ hasText: 'ワンタイムパスワードを再送信しました。' }).waitFor();
    await shot('1-resent');
    const second = await inbox.code();

    // The first code no longer works (unless the two happen to be the same number).
    if (first !== second) {
      await enterMailedCode(page, first);
      await alertWith(page, WRONG_CODE).waitFor();
      await shot('2-old-code');
    }
    await enterMailedCode(page, second);
    await expectTopPage(page, member.name);
  });
});
