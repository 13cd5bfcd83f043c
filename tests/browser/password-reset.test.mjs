// Journey 8 of SPEC §3 (daiwakenpo manual 3-3, 「パスワードを忘れた場合」): a member who forgot
// the password taps 「ログイン」, then 「パスワードを忘れた方はこちら」, types 「ユーザ ID」 and
// 「実行」; the page says to check the mail (the same page for a user ID nobody has, and no
// mail then). The mail from the society carries the 「パスワードをリセット」 link, which opens
//
//   - on daiwakenpo (mfa.reset_with_password = true) the authenticator app's set-up page
//     「ワンタイムパスワード設定」: the new app replaces every factor the member held;
//   - on kanekakenpo (false) the second factor the member already holds (the app newMember
//     set up: /login/factor → 「ワンタイムパスワード」);
//
// then 「パスワード更新」: the current password is refused next to the field, a new one leads
// to the signed-in top page and a 「パスワードが変更されました」 notice. The link is spent
// afterwards (「このリンクは使えません」), and after logging out the new password signs in
// and the old one does not. Both societies, phone and desktop.
// Screenshots: target/screenshots/recovery-j8-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { KIND, deviceNames, openLoginMethods } from './lib/factors.mjs';
import { subjectOf } from './lib/inbox.mjs';
import {
  INVALID_CREDENTIALS,
  enterCode,
  expectTopPage,
  logout,
  mailsTo,
  submitLogin,
  uniquePassword,
  uniqueUserId,
  userIdField,
  worded,
} from './lib/journeys.mjs';
import { VIEWPORTS, closing, newMember, sharedPortal, tenantsWith } from './lib/suite.mjs';
import { freshCode, registerApp, totpCode } from './lib/totp.mjs';

const shared = sharedPortal();

/** Whether the society's reset replaces the second factors with a new authenticator app. */
const tenants = tenantsWith({
  daiwakenpo: { replacesFactors: true },
  kanekakenpo: { replacesFactors: false },
});

const RESET_SUBJECT = 'パスワードリセットのご案内';
const DONE_SUBJECT = 'パスワードが変更されました';
const SAME_PASSWORD = '現在のパスワードと同じパスワードには変更できません。';
const WRONG_OTP = 'ワンタイムパスワードが正しくありません';

/** How many 「パスワードリセットのご案内」 mails the portal has written to anybody. */
async function resetMailCount(portal) {
  return (await mailsTo(portal, '')).filter((mail) => subjectOf(mail).includes(RESET_SUBJECT)).length;
}

/**
 * From the top page: 「ログイン」 → 「パスワードを忘れた方はこちら」 → 「ユーザ ID」 → 「実行」,
 * which answers 303 to 「パスワード更新のご案内」. Resolves to the text of <main> there.
 */
async function askForResetLink(page, portal, slug, userId, { shot = async () => {} } = {}) {
  await page.goto(portal.url(slug, '/'));
  await page.getByRole('link', { name: 'ログイン', exact: true }).click();
  await page.getByRole('link', { name: 'パスワードを忘れた方はこちら' }).click();
  await page.getByRole('heading', { name: 'パスワード更新メール送信' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/forgot-password');
  await userIdField(page, slug).fill(userId);
  await shot('1-form');
  const answer = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/forgot-password',
  );
  await page.getByRole('button', { name: '実行', exact: true }).click();
  const response = await answer;
  assert.equal(response.status(), 303, '「実行」 answers with a redirect');
  assert.equal(new URL(response.headers().location, page.url()).pathname, '/forgot-password/sent');
  await page.getByRole('heading', { name: 'パスワード更新のご案内' }).waitFor();
  await page.getByRole('status').filter({ hasText: /^受け付けました。/ }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/forgot-password/sent');
  return page.textContent('main');
}

/** The 「パスワードをリセット：」 link of a reset mail, checked to point at `portal`'s `slug`. */
function resetLinkIn(mail, portal, slug) {
  const link = mail.text.match(/パスワードをリセット：\r?\n(\S+)/)?.[1];
  assert.ok(link, `a 「パスワードをリセット：」 line followed by the link in:\n${mail.text}`);
  const url = new URL(link);
  assert.match(url.protocol, /^https?:$/);
  assert.equal(url.host, new URL(portal.url(slug)).host, `the society's site: ${link}`);
  assert.equal(url.pathname, '/password-reset');
  assert.match(url.search, /^\?token=[0-9a-f]{64}$/, `one 64-hex token: ${link}`);
  return link;
}

/** The paths of the main frame's navigation requests (redirects included), as they happen. */
function recordNavigations(page) {
  const paths = [];
  page.on('request', (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
      paths.push(new URL(request.url()).pathname);
    }
  });
  return paths;
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of tenants) {
    const { slug, replacesFactors } = tenant;
    test(`journey 8: a forgotten password is reset from the mailed link on ${slug} (${viewportName})`, { timeout: 120_000 }, async () => {
      const m = await newMember(shared, tenant, viewportName, 'recovery-j8');
      await closing([m], async () => {
        const { page, shot, member, inbox, userId, password, totpKey } = m;
        const portal = shared.portal;
        assert.ok(totpKey, 'newMember set up the authenticator app');
        await logout(page, member.name);

        // A user ID nobody has first: the same page, and no mail to anybody.
        const mailsBefore = await resetMailCount(portal);
        const unknown = await askForResetLink(page, portal, slug, uniqueUserId('Nob'));
        const known = await askForResetLink(page, portal, slug, userId, { shot });
        assert.equal(known, unknown, 'the page does not tell whether the user ID exists');
        await shot('2-sent');

        // The mail (requests are worked in order: once it is here, the unknown one is done).
        const mail = await inbox.next({ subject: RESET_SUBJECT });
        assert.ok(mail.subject.includes(RESET_SUBJECT), mail.subject);
        assert.match(mail.headers, /^from:.*@/im, 'from the society');
        const link = resetLinkIn(mail, portal, slug);
        assert.equal(await resetMailCount(portal), mailsBefore + 1, 'no mail for the unknown user ID');

        // The link: a new authenticator app (daiwa), or the factor the member holds (kaneka).
        const visited = recordNavigations(page);
        await page.goto(link);
        let key = totpKey;
        if (replacesFactors) {
          await page.getByRole('heading', { name: 'ワンタイムパスワード設定' }).waitFor();
          assert.equal(new URL(page.url()).pathname, '/login/totp');
          ({ key } = await registerApp(page, { deviceName: 'Android', shot: (s) => shot(`3-${s}`) }));
          assert.notEqual(key, totpKey, 'a new key');
        } else {
          await page.getByRole('heading', { name: 'ワンタイムパスワード', exact: true }).waitFor();
          assert.ok(visited.includes('/login/factor'), `through /login/factor: ${visited.join(' → ')}`);
          await page.getByRole('status').filter({ hasText: 'パスワードの再設定中です' }).waitFor();
          await shot('3-factor');
          await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await freshCode(totpKey));
          await page.getByRole('button', { name: '次へ' }).click();
        }

        // パスワード更新: the current password is refused next to the field.
        await page.getByRole('heading', { name: 'パスワード更新', exact: true }).waitFor();
        assert.equal(new URL(page.url()).pathname, '/password-reset/new');
        assert.ok(!page.url().includes('token='), 'the token has left the address bar');
        const field = page.getByLabel('パスワード', { exact: true });
        const confirm = page.getByLabel('パスワード確認用');
        await shot('4-new-password');
        await field.fill(password);
        await confirm.fill(password);
        await page.getByRole('button', { name: '実行', exact: true }).click();
        const refused = page.getByRole('alert').filter({ hasText: SAME_PASSWORD });
        await refused.waitFor();
        assert.equal(await field.getAttribute('aria-invalid'), 'true');
        const describedBy = (await field.getAttribute('aria-describedby')).split(/\s+/);
        assert.ok(describedBy.includes(await refused.getAttribute('id')), 'the message belongs to 「パスワード」');
        await shot('5-same-refused');

        // A new one → the signed-in top page.
        const newPassword = uniquePassword('Kaede');
        await field.fill(newPassword);
        await confirm.fill(newPassword);
        await page.getByRole('button', { name: '実行', exact: true }).click();
        await page.waitForURL((url) => url.pathname === '/');
        await expectTopPage(page, member.name);
        await shot('6-top');

        const notice = await inbox.next({ subject: DONE_SUBJECT });
        assert.ok(notice.subject.includes(DONE_SUBJECT), notice.subject);
        assert.equal(
          notice.text.includes('二要素認証の設定も'),
          replacesFactors,
          `the notice tells of replaced factors only where they were:\n${notice.text}`,
        );

        // Only the new app remains where the reset replaced the factors.
        await openLoginMethods(page);
        assert.deepEqual(await deviceNames(page, KIND.totp), replacesFactors ? ['Android'] : ['iPhone']);

        // The link is spent.
        const again = await page.goto(link);
        assert.equal(again.status(), 400);
        await page.getByRole('heading', { name: 'このリンクは使えません' }).waitFor();
        assert.match(await page.getByRole('alert').innerText(), /このリンクは/);
        const restart = page.getByRole('link', { name: 'パスワードを忘れた方はこちら' });
        assert.equal(await restart.getAttribute('href'), '/forgot-password');
        await shot('7-link-spent');

        // After logging out the old password is refused and the new one signs in.
        await page.goto(portal.url(slug, '/'));
        await logout(page, member.name);
        await submitLogin(page, portal, slug, userId, password);
        await page.getByRole('alert').filter({ hasText: worded(slug, INVALID_CREDENTIALS) }).waitFor();
        await shot('8-old-refused');
        await submitLogin(page, portal, slug, userId, newPassword);
        if (replacesFactors) {
          // The old app's code no longer works (unless it happens to be the new one's).
          const old = await totpCode(totpKey);
          if (old !== (await totpCode(key)) && old !== (await totpCode(key, 30)) && old !== (await totpCode(key, -30))) {
            await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(old);
            await page.getByRole('button', { name: 'トップページへ' }).click();
            await page.getByRole('alert').filter({ hasText: WRONG_OTP }).waitFor();
          }
        }
        await enterCode(page, key);
        await expectTopPage(page, member.name);
        await shot('9-signed-in');
      });
    });
  }
}
