// The society admin console in Chromium, by visible labels: an admin opens the invitation,
// sets a password and an authenticator app (oathtool), registers a member and prints the
// letter (page.pdf(), one A4 page with the credentials), and the member signs in with them;
// a member locked by five wrong passwords is unlocked and signs in; 「二要素認証リセット」
// makes a member set up an app at the next login; 「利用停止」 ends the member's open
// session in another browser at once; the audit CSV is downloaded and parsed. An admin who
// chooses a passkey on the invitation registers one (CDP virtual authenticator) and signs
// in with it.
// Laptop and tablet. Screenshots: target/screenshots/console-*.png

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { firstLogin, portalCli, submitLogin } from './lib/journeys.mjs';
import { addMember } from './lib/members.mjs';
import { launchBrowser, newPage, repoRoot, screenshot, startPortal } from './lib/server.mjs';
import { registerApp, totpCode } from './lib/totp.mjs';
import { addAuthenticator } from './lib/webauthn.mjs';

const SLUG = 'daiwakenpo';
const PASSWORD = 'Console-pass-2026!';
const SCREENS = {
  laptop: { viewport: { width: 1280, height: 800 } },
  tablet: { viewport: { width: 820, height: 1180 }, hasTouch: true },
};

let portal;
let browser;
let serial = 0;

before(async () => {
  portal = await startPortal();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await portal?.stop();
});

/** `portal admin create`, then the invitation link in `page`: password, app, dashboard. */
async function inviteAndSignIn(page, shot) {
  serial += 1;
  const email = `clerk${serial}.${process.pid}@daiwa.example.jp`;
  const { stdout } = await portalCli(portal, ['admin', 'create', SLUG, email]);
  const token = JSON.parse(stdout).setup_url.split('token=')[1];
  await page.goto(portal.url(SLUG, `/admin/invite?token=${token}`));
  await page.getByText(email).waitFor();
  await shot('invite');
  await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
  await page.getByLabel('パスワード確認用').fill(PASSWORD);
  await page.getByRole('button', { name: 'パスワードを設定' }).click();
  await page.getByText('スキャンできませんか？').click();
  const key = (await page.locator('#totp-key').textContent()).trim();
  await shot('totp');
  await page.getByLabel('デバイス名').fill('事務所のスマホ');
  await page.getByLabel('認証コード').fill(await totpCode(key));
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();
  await shot('dashboard');
  return { email, key };
}

/** The member page of `userId`, found with the console's search. */
async function openMember(page, userId) {
  await page.getByRole('link', { name: '会員管理', exact: true }).click();
  await page.getByLabel('ユーザ ID・氏名・メールアドレス').fill(userId);
  await page.getByRole('button', { name: '検索', exact: true }).click();
  await page.getByRole('link', { name: userId, exact: true }).click();
}

/** An action of the member page and its confirmation button. */
async function act(page, link, confirm) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('button', { name: confirm, exact: true }).click();
  await page.getByRole('status').waitFor();
}

for (const [screenName, screen] of Object.entries(SCREENS)) {
  test(`an invited admin registers a member, prints the letter, and the member signs in with it (${screenName})`, { timeout: 90_000 }, async () => {
    const page = await newPage(browser, screen);
    const shot = (step) => screenshot(page, `console-${screenName}-${step}`);
    try {
      await inviteAndSignIn(page, shot);
      await page.getByRole('link', { name: '会員管理', exact: true }).click();
      await page.getByRole('link', { name: '会員登録', exact: true }).click();
      await page.getByLabel('氏名', { exact: true }).fill('大和 花子');
      await page.getByLabel('氏名カナ（任意）').fill('ダイワ ハナコ');
      await page.getByLabel('生年月日').fill('1985-06-15');
      await page.getByLabel('メールアドレス').fill(`hanako.${screenName}.${process.pid}@example.jp`);
      await shot('member-new');
      await page.getByRole('button', { name: '登録する' }).click();
      const password = (await page.locator('#temporary-password').textContent()).trim();
      const userId = (await page.locator('table.credentials code').first().textContent()).trim();
      assert.match(password, /^[a-z0-9]{12}$/);
      await shot('credentials');

      await page.getByRole('link', { name: '通知書を印刷' }).click();
      await page.getByRole('heading', { name: '会員サイト ご利用開始のお知らせ' }).first().waitFor();
      await shot('letter');
      const pdf = await page.pdf({ format: 'A4', printBackground: true });
      const dir = path.join(repoRoot, 'target', 'screenshots');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, `console-${screenName}-letter.pdf`), pdf);
      const pages = pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g) ?? [];
      assert.equal(pages.length, 1, 'the letter is one A4 page');
      const text = await page.textContent('body');
      assert.ok(text.includes(userId) && text.includes(password), 'the letter shows the credentials');

      // The member follows the letter: the temporary credentials open the first login.
      const member = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      try {
        await submitLogin(member, portal, SLUG, userId, password);
        await member.getByLabel('生年月日').waitFor();
        await screenshot(member, `console-${screenName}-member-birth-date`);
      } finally {
        await member.context().close();
      }
    } finally {
      await page.context().close();
    }
  });
}

test('unlock, factor reset and 利用停止 take effect for the member at once; the audit CSV downloads', { timeout: 180_000 }, async () => {
  const admin = await newPage(browser, SCREENS.laptop);
  const shot = (step) => screenshot(admin, `console-actions-${step}`);
  const contexts = [admin];
  try {
    await inviteAndSignIn(admin, shot);

    // Locked by five wrong passwords (FAQ Q5), unlocked, then signs in.
    const locked = await addMember(portal, SLUG, { name: 'ロック タロウ' });
    const lockedPage = await newPage(browser, SCREENS.laptop);
    contexts.push(lockedPage);
    for (let i = 0; i < 5; i += 1) {
      await submitLogin(lockedPage, portal, SLUG, locked.user_id, 'wrong-password-1');
      await lockedPage.getByRole('alert').first().waitFor();
    }
    await submitLogin(lockedPage, portal, SLUG, locked.user_id, locked.password);
    await lockedPage.getByText('アカウントがロックされています').waitFor();
    await openMember(admin, locked.user_id);
    await shot('member-locked');
    await act(admin, 'ロック解除', 'ロックを解除する');
    await shot('member-unlocked');
    await submitLogin(lockedPage, portal, SLUG, locked.user_id, locked.password);
    await lockedPage.getByLabel('生年月日').waitFor();

    // A member with an app and an open session: 「二要素認証リセット」, then 「利用停止」.
    const member = await addMember(portal, SLUG, { name: 'テイシ ハナコ' });
    const memberPage = await newPage(browser, SCREENS.laptop);
    contexts.push(memberPage);
    const { userId, password } = await firstLogin(memberPage, portal, SLUG, member);
    await openMember(admin, userId);
    await act(admin, '二要素認証リセット', '二要素認証をリセットする');
    await shot('factors-reset');
    // The session ended with the reset; the next login asks for a new app.
    await memberPage.reload();
    await memberPage.getByRole('link', { name: 'ログイン', exact: true }).waitFor();
    await submitLogin(memberPage, portal, SLUG, userId, password);
    await memberPage.getByRole('heading', { name: 'ワンタイムパスワード設定' }).waitFor();
    await registerApp(memberPage, {});
    await memberPage.getByRole('link', { name: member.name, exact: true }).waitFor();

    await act(admin, '利用停止', '利用を停止する');
    await shot('disabled');
    await memberPage.reload();
    await memberPage.getByRole('link', { name: 'ログイン', exact: true }).waitFor();
    assert.equal(await memberPage.getByRole('link', { name: member.name, exact: true }).count(), 0);

    // 操作履歴 → 「CSVでダウンロード」: UTF-8 with a BOM, the actions in it.
    await admin.getByRole('link', { name: '操作履歴', exact: true }).click();
    await shot('audit');
    const [download] = await Promise.all([
      admin.waitForEvent('download'),
      admin.getByRole('link', { name: 'CSVでダウンロード' }).click(),
    ]);
    const file = await download.path();
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(file);
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'a BOM for Excel');
    const lines = bytes.toString('utf8').slice(1).trim().split('\r\n');
    assert.ok(lines.length > 5);
    const events = lines.slice(1).map((line) => line.split(',')[4]);
    for (const event of ['member_unlocked', 'member_factors_reset', 'member_disabled']) {
      assert.ok(events.includes(event), `${event} in the CSV`);
    }
  } finally {
    for (const page of contexts) await page.context().close();
  }
});

test('an invited admin chooses a passkey, registers it and signs in with it', { timeout: 90_000 }, async () => {
  const page = await newPage(browser, SCREENS.laptop);
  const shot = (step) => screenshot(page, `console-passkey-${step}`);
  try {
    const authenticator = await addAuthenticator(page);
    const email = `passkey.${process.pid}@daiwa.example.jp`;
    const { stdout } = await portalCli(portal, ['admin', 'create', SLUG, email]);
    const token = JSON.parse(stdout).setup_url.split('token=')[1];
    await page.goto(portal.url(SLUG, `/admin/invite?token=${token}`));
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await page.getByLabel('パスワード確認用').fill(PASSWORD);
    await page.getByRole('radio', { name: /^パスキー/ }).check();
    await shot('invite');
    await page.getByRole('button', { name: 'パスワードを設定' }).click();

    await page.getByRole('heading', { name: 'パスキーの登録', level: 1 }).waitFor();
    await shot('setup');
    await page.getByRole('button', { name: '登録', exact: true }).click();
    const field = page.getByLabel('パスキーの名前');
    await field.waitFor();
    await field.fill('事務所のパソコン');
    await shot('name');
    await page.getByRole('button', { name: 'ＯＫ' }).click();
    await page.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();
    const [credential] = await authenticator.credentials();
    assert.equal(credential.rpId, `${SLUG}.localhost`, 'the passkey belongs to the society\'s host');

    // Signed out, then in again: address, password, 「次へ」 and the passkey.
    await page.getByRole('button', { name: 'ログアウト' }).click();
    await page.getByText('ログアウトしました。').waitFor();
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'ログイン', exact: true }).click();
    await page.getByRole('heading', { name: 'パスキーで確認', level: 1 }).waitFor();
    await shot('login');
    await page.getByRole('button', { name: '次へ' }).click();
    await page.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();
    const [used] = await authenticator.credentials();
    assert.ok(used.signCount > credential.signCount, 'the sign-in used the passkey');
  } finally {
    await page.context().close();
  }
});
