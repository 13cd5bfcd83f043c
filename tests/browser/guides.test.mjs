// The two printed guides, followed step by step on the seed tenant files as they are
// (startPortal({ asPrinted: true })): each numbered step of the guide is one screen of
// ours, reached by the visible labels the guide quotes, and each screen is checked by its
// h1 and its title, so a step that comes early, late or not at all fails the test.
//
//   daiwakenpo  (KOSMO Communication Web manual) §2-1 ①–⑩ first login, §2-2 ①–③ logout,
//               §2-3 passkey (2. on a phone ③–⑫, 3. on a PC ③–④) or §2-4-1 the
//               authenticator app (2. on a phone ③–⑬, 3. on a PC ③–⑬)
//   kanekakenpo (初回ログインのながれ) 【1】–【11】 first login, then 【2-1】 passkey on a PC,
//               【2-2】 passkey on a phone, 【2-3】 the app on a phone, 【2-4】 the app on a
//               PC with a phone, 【2-6】 the mailed one-time password
//
// For every method the society allows, on a phone and on a PC: the first login ends on the
// top page with 「初回ログインが完了しました」 and no factor; signing in again leads to the
// set-up only (the top page and 「プロフィール変更」 are not reachable before it); after the
// set-up the top page has no notice, and the next login asks for the new factor.
//
// Screenshots: target/screenshots/guides-<slug>-<viewport>-<method>-<step>.png. With
// PORTAL_TEST_GUIDE_IMAGES=1 the screens of docs/guides/<slug>.md are written to
// docs/guides/img/<slug>/<step>.png instead (phone screens; the PC sections' set-up).

import assert from 'node:assert/strict';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';

import { openInbox } from './lib/inbox.mjs';
import { findLink, methodLabel, uniquePassword, userIdField, worded } from './lib/journeys.mjs';
import { addMember } from './lib/members.mjs';
import { newPage, repoRoot, screenshot } from './lib/server.mjs';
import { TENANTS, VIEWPORTS, sharedPortal } from './lib/suite.mjs';
import { freshCode, readQr } from './lib/totp.mjs';
import { addAuthenticator } from './lib/webauthn.mjs';

const shared = sharedPortal({ asPrinted: true });

/** Whether this run writes the images of docs/guides/. */
const GUIDE_IMAGES = process.env.PORTAL_TEST_GUIDE_IMAGES === '1';
const GUIDE_DIR = path.join(repoRoot, 'docs', 'guides');

/** Each society's name (its tenant file's display_name) and the methods it allows, in its order. */
const SOCIETIES = {
  daiwakenpo: { displayName: '大和証券グループ健康保険組合', methods: ['passkey', 'totp'] },
  kanekakenpo: { displayName: 'カネカ健康保険組合', methods: ['passkey', 'totp', 'email_otp'] },
};

const NOTICE = '初回ログインが完了しました';
const SERVICES = 'サービスメニュー';
const LOGOUT_QUESTION = 'ログアウトしてもよろしいですか？';

/** The guides' address: https://www.<slug>.portal.kosmo-web.jp/, here www.<slug>.localhost. */
function wwwUrl(portal, slug, urlPath = '/') {
  return `http://www.${slug}.localhost:${portal.memberPort}${urlPath}`;
}

/** Short names of the methods, for user IDs, addresses and file names. */
const SHORT = { passkey: 'pk', totp: 'otp', email_otp: 'mail' };

/** Every image written to docs/guides/img in this run, by `<slug>/<step>`. */
const written = new Set();

/**
 * One member walking one guide on one screen: `screen()` checks where they are, `shot()`
 * takes the picture of a numbered step.
 */
function walker(page, { slug, viewportName, method }) {
  const { displayName } = SOCIETIES[slug];
  const firstMethod = SOCIETIES[slug].methods[0];
  return {
    /**
     * The page is the screen whose h1 is `h1` (exactly, and the only h1) and whose title is
     * `title` (default 「<h1>｜<society>」); `has`, when given, is a locator the screen must
     * show as well (for two screens with the same heading). `step` names the guide's step
     * in the failure message.
     */
    async screen(step, h1, { title = `${h1}｜${displayName}`, has } = {}) {
      const heading = page.getByRole('heading', { level: 1, name: h1, exact: true });
      try {
        await heading.waitFor({ timeout: 10_000 });
        if (has) await has.first().waitFor({ timeout: 5_000 });
      } catch {
        const seen = await page.locator('h1').allInnerTexts().catch(() => []);
        assert.fail(
          `${slug} ${step}: expected the screen 「${h1}」${has ? ` with ${has}` : ''}, ` +
            `but the page shows ${JSON.stringify(seen)} at ${page.url()}`,
        );
      }
      assert.equal(await page.locator('h1').count(), 1, `${step}: one h1`);
      assert.equal(await page.title(), title, `${step}: the page's title`);
    },
    /**
     * A picture of the step `name` (of `page`, or of the page `of`): always under
     * target/screenshots; with GUIDE_IMAGES also into docs/guides/img/<slug>/<name>.png when
     * it is one of the guide's pictures: on the phone, every step (a screen that every
     * method's walk shows alike, `firstLogin`: the first login, the next login's login
     * screen, from the walk with the society's first method only); on the PC, the set-up
     * screens (`pc`). `doc: false` keeps a picture out of docs/guides (the same screen as
     * an earlier picture).
     */
    async shot(name, { firstLogin = false, pc = false, doc = true, of = page } = {}) {
      await screenshot(of, `guides-${slug}-${viewportName}-${SHORT[method]}-${name}`);
      if (!GUIDE_IMAGES || !doc) return;
      if (viewportName === 'phone' ? firstLogin && method !== firstMethod : !pc) return;
      const dir = path.join(GUIDE_DIR, 'img', slug);
      await mkdir(dir, { recursive: true });
      await of.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true, scale: 'css' });
      written.add(`${slug}/${name}`);
    },
  };
}

/** The public top page: the society's name, 「ログイン」 at the top right, nobody signed in. */
async function expectPublicTop(page, g, step, name) {
  const { displayName } = SOCIETIES[slugOfPage(page)];
  await g.screen(step, displayName, { title: displayName });
  const login = page.getByRole('navigation', { name: 'アカウント' }).getByRole('link', { name: 'ログイン', exact: true });
  await login.waitFor();
  assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, `${step}: nobody signed in`);
  return login;
}

function slugOfPage(page) {
  return new URL(page.url()).hostname.replace(/^www\./, '').split('.')[0];
}

/** `locator` is in the top right corner of the screen. */
async function assertTopRight(page, locator, what) {
  const box = await locator.boundingBox();
  const { width } = page.viewportSize();
  assert.ok(box && box.x + box.width > width / 2 && box.y < 120, `${what} at the top right (${JSON.stringify(box)})`);
}

/**
 * The member's top page: their name at the top right, the society's services, and the
 * notice 「初回ログインが完了しました」 with 「ログアウト」 (`notice`) or no notice at all.
 */
async function expectMemberTop(page, g, step, name, { notice }) {
  const { displayName } = SOCIETIES[slugOfPage(page)];
  await g.screen(step, notice ? NOTICE : SERVICES, { title: displayName });
  await page.getByRole('heading', { name: SERVICES, level: notice ? 2 : 1 }).waitFor();
  assert.ok(await page.locator('.services a.service').count() > 0, `${step}: the service menu lists services`);
  const nameLink = page.getByRole('link', { name, exact: true });
  await assertTopRight(page, nameLink, `${step}: the member's name`);
  const logoutLink = page.getByRole('status').getByRole('link', { name: 'ログアウト', exact: true });
  if (notice) {
    await logoutLink.waitFor();
  } else {
    assert.equal(await page.getByText(NOTICE).count(), 0, `${step}: no 「${NOTICE}」 once the method is set up`);
  }
  return { nameLink, logoutLink };
}

/** The logout question → 「ログアウトする」 → the public top page with 「ログイン」. */
async function confirmLogout(page, g, step, name, { shotName, afterShot } = {}) {
  await g.screen(step, LOGOUT_QUESTION, { title: `ログアウト｜${SOCIETIES[slugOfPage(page)].displayName}` });
  if (shotName) await g.shot(shotName, { firstLogin: true });
  await page.getByRole('button', { name: 'ログアウトする', exact: true }).click();
  const login = await expectPublicTop(page, g, `${step} (after)`, name);
  await assertTopRight(page, login, `${step}: 「ログイン」`);
  // (The same screen as the top page the walk began on: the guide's picture is that one.)
  if (afterShot) await g.shot(afterShot, { doc: false });
}

/** The top page's 「ログイン」, the login screen, user ID and password → 「ログイン」. */
async function signIn(page, g, step, slug, userId, password, { shotName, ...shotOptions } = {}) {
  await page.goto(wwwUrl(shared.portal, slug));
  await page.getByRole('link', { name: 'ログイン', exact: true }).click();
  await g.screen(step, 'ログイン');
  await userIdField(page, slug).fill(userId);
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  if (shotName) await g.shot(shotName, shotOptions);
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();
}

/** The set-up screen of each method (its h1) and what tells it from a later screen with the same h1. */
function setupScreen(page, method) {
  if (method === 'passkey') return { h1: 'セキュリティキー登録', has: page.getByRole('button', { name: '登録', exact: true }) };
  if (method === 'totp') return { h1: 'ワンタイムパスワード設定', has: page.getByText('スキャンできませんか？') };
  return { h1: 'メール認証', has: page.getByLabel('ワンタイムパスワード（6桁）') };
}

/**
 * After the first login, before the set-up: signing in leads to the set-up only. The top
 * page and 「プロフィール変更」 are not the member's while it waits (nobody is signed in),
 * and signing in again leads to the same set-up.
 */
async function onlyTheSetUp(page, g, slug, userId, password, name, method, inbox) {
  const setup = setupScreen(page, method);
  // The code mailed for this arrival is spent by the next one (a new code is mailed).
  if (method === 'email_otp') await inbox.next({ subject: 'ワンタイムパスワードのお知らせ' });
  await page.goto(wwwUrl(shared.portal, slug, '/'));
  await expectPublicTop(page, g, 'the top page during the set-up', name);
  assert.equal(await page.getByRole('heading', { name: SERVICES }).count(), 0, 'no service menu before the set-up');
  await page.goto(wwwUrl(shared.portal, slug, '/profile'));
  await page.waitForLoadState();
  assert.notEqual(new URL(page.url()).pathname, '/profile', '「プロフィール変更」 is not shown before the set-up');
  assert.equal(await page.getByRole('heading', { name: 'プロフィール変更' }).count(), 0, 'no 「プロフィール変更」 before the set-up');
  assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, 'not signed in before the set-up');
  await signIn(page, g, 'signing in again before the set-up', slug, userId, password);
  await g.screen('signing in again before the set-up', setup.h1, { has: setup.has });
}

/** The part of a raw mail (an .eml file) of type `type`, decoded. */
function mailPart(raw, type) {
  const unfolded = raw.replace(/\r\n/g, '\n');
  const start = unfolded.search(new RegExp(`^content-type:\\s*${type.replace('/', '\\/')}`, 'im'));
  if (start < 0) return null;
  const rest = unfolded.slice(start);
  const split = rest.indexOf('\n\n');
  const headers = rest.slice(0, split).replace(/\n[ \t]+/g, ' ');
  let body = rest.slice(split + 2);
  const boundary = body.search(/^--/m);
  if (boundary >= 0) body = body.slice(0, boundary);
  const encoding = headers.match(/content-transfer-encoding:\s*(\S+)/i)?.[1]?.toLowerCase() ?? '7bit';
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = body.replace(/=\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

/**
 * The mail as the member's mail app on the phone shows it (its HTML part, or the text, at
 * the phone's width under a line with the subject), shot as `name`.
 */
async function shootMail(g, mail, name, shotOptions) {
  const raw = await readFile(mail.file, 'utf8');
  const html = mailPart(raw, 'text/html');
  const page = await newPage(shared.browser, { viewport: VIEWPORTS.phone.viewport });
  try {
    const escape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    await page.setContent(html ?? `<pre style="white-space:pre-wrap;font:14px sans-serif;padding:12px">${escape(mail.text)}</pre>`);
    await page.evaluate((subject) => {
      const bar = document.createElement('div');
      bar.textContent = subject;
      bar.style.cssText = 'font:bold 14px sans-serif;padding:12px 16px;background:#fff;border-bottom:1px solid #ccc';
      document.body.prepend(bar);
      document.body.style.padding = '0 0 24px';
    }, mail.subject);
    await page.getByText(mail.subject, { exact: true }).first().waitFor();
    await g.shot(name, { ...shotOptions, of: page });
  } finally {
    await page.context().close();
  }
}

// --- daiwakenpo ---------------------------------------------------------------------------------

/**
 * daiwakenpo §2-1 ①–⑩, §2-2 ①–③: the letter's ID and password, 生年月日, 利用規約
 * 「同意する」, ⑦ a user ID of the member's own with the method 「実行」, ⑧ 「パスワード更新」
 * 「送信」, ⑨ the address 「送信」, ⑩ the top page; the name → 「ログアウトする」.
 */
async function daiwaFirstLogin(page, g, member, { userId, password, method }) {
  const slug = 'daiwakenpo';
  // ①② the address of the guide, the top page: 「ログイン」 at the top right.
  await page.goto(wwwUrl(shared.portal, slug));
  const login = await expectPublicTop(page, g, '②', member.name);
  await assertTopRight(page, login, '② 「ログイン」');
  await g.shot('2-1-02-top', { firstLogin: true });
  await login.click();

  // ③ the temporary user ID and password → 「ログイン」
  await g.screen('③', 'ログイン');
  await userIdField(page, slug).fill(member.user_id);
  await page.getByLabel('パスワード', { exact: true }).fill(member.password);
  await g.shot('2-1-03-login', { firstLogin: true });
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();

  // ⑤ 生年月日
  await g.screen('⑤', '生年月日の入力');
  await page.getByLabel('生年月日').fill(member.birthDate);
  await g.shot('2-1-05-birth-date', { firstLogin: true });
  await page.getByRole('button', { name: '次へ', exact: true }).click();

  // ⑥ 利用規約 → 「同意する」
  await g.screen('⑥', 'KOSMO Communication Web 利用規約', { title: `利用規約｜${SOCIETIES[slug].displayName}` });
  await g.shot('2-1-06-terms', { firstLogin: true });
  await page.getByRole('button', { name: '同意する', exact: true }).click();

  // ⑦ ユーザ IDの変更: the ID, 認証方式 「生体認証」 or 「OTP認証」 → 「実行」
  await g.screen('⑦', 'ユーザ IDの変更');
  const radios = page.getByRole('group', { name: '認証方式' }).getByRole('radio');
  assert.deepEqual(
    await Promise.all((await radios.all()).map((r) => r.evaluate((el) => el.labels[0].textContent.trim()))),
    ['生体認証', 'OTP認証'],
    '⑦ 「認証方式は生体認証、OTP認証のいずれかを選択ください。」',
  );
  await page.getByText('利用不可文字一覧を見る').waitFor();
  await userIdField(page, slug).fill(userId);
  await page.getByRole('radio', { name: methodLabel(slug, method), exact: true }).check();
  await g.shot('2-1-07-user-id', { firstLogin: true });
  await page.getByRole('button', { name: '実行', exact: true }).click();

  // ⑧ パスワード更新 → 「送信」
  await g.screen('⑧', 'パスワード更新');
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByLabel('パスワード確認用').fill(password);
  await g.shot('2-1-08-password', { firstLogin: true });
  await page.getByRole('button', { name: '送信', exact: true }).click();

  // ⑨ the registered address, kept → 「送信」
  await g.screen('⑨', 'メールアドレスの更新', { has: page.getByLabel('メールアドレス') });
  assert.equal(await page.getByLabel('メールアドレス').inputValue(), member.email);
  await g.shot('2-1-09-email', { firstLogin: true });
  await page.getByRole('button', { name: '送信', exact: true }).click();

  // ⑩ the top page with the service menu, and the notice: the method comes at the next login.
  const { nameLink } = await expectMemberTop(page, g, '⑩', member.name, { notice: true });
  await page.getByText(worded(slug, `選択した認証方法「${methodLabel(slug, method)}」を設定します`)).waitFor();
  await g.shot('2-1-10-top', { firstLogin: true });

  // §2-2 ① the name at the top right → ② 「ログアウトする」 → ③ 「ログイン」 at the top right.
  await nameLink.click();
  await confirmLogout(page, g, '§2-2 ②', member.name, { shotName: '2-2-02-logout', afterShot: '2-2-03-top' });
}

/** daiwakenpo §2-3: ③ login → ④ 「登録」 → ⑥ the name 「ＯＫ」 → ⑦ top → ⑧–⑫ the check. */
async function daiwaPasskey(page, g, member, { userId, password, pc }) {
  const slug = 'daiwakenpo';
  const p = pc ? 'pc-2-3-3' : '2-3-2';
  // ④ セキュリティキーの登録 → 「登録」 (⑤ the device's own biometric prompt)
  await g.screen('§2-3 ④', 'セキュリティキー登録', { has: page.getByRole('button', { name: '登録', exact: true }) });
  await g.shot(`${p}-04-register`, { pc: true });
  await page.getByRole('button', { name: '登録', exact: true }).click();
  // ⑥ 認証ラベルの登録: 「パスキー」 offered, replaced by a name → 「ＯＫ」
  const field = page.getByLabel('パスキーの名前');
  await g.screen('§2-3 ⑥', 'セキュリティキー登録', { has: field });
  assert.equal(await field.inputValue(), 'パスキー');
  await field.fill(pc ? '会社のパソコン' : 'iPhone');
  await g.shot(`${p}-06-name`, { pc: true });
  await page.getByRole('button', { name: 'ＯＫ', exact: true }).click();
  // ⑦ the top page; log out once to check.
  const { nameLink } = await expectMemberTop(page, g, '§2-3 ⑦', member.name, { notice: false });
  await g.shot(`${p}-07-top`);
  await nameLink.click();
  await confirmLogout(page, g, '§2-3 ⑦ (logout)', member.name);
  // ⑧⑨ 「ログイン」 → user ID and password → ⑩ 生体認証 「次へ」 (⑪ the prompt) → ⑫ top
  await signIn(page, g, '§2-3 ⑨', slug, userId, password);
  await g.screen('§2-3 ⑩', '生体認証');
  await g.shot(`${p}-10-passkey`);
  await page.getByRole('button', { name: '次へ', exact: true }).click();
  await expectMemberTop(page, g, '§2-3 ⑫', member.name, { notice: false });
  await g.shot(`${p}-12-top`, { doc: false }); // the same screen as ⑦
}

/**
 * The authenticator app's set-up (daiwakenpo §2-4-1, kanekakenpo 【2-3】【2-4】): the QR code;
 * on a phone 「スキャンできませんか？」 shows the key under 「2.アプリケーションを開き、キーを
 * 入力します」, on a PC the phone reads the QR code (which must carry the same key); the
 * device's name and the app's code → 「実行」. Resolves to the key.
 */
async function setUpApp(page, g, { pc, shots }) {
  const qr = page.getByRole('img', { name: '認証アプリに登録するQRコード' });
  await g.screen(shots.step, 'ワンタイムパスワード設定', { has: page.getByText('スキャンできませんか？') });
  await qr.waitFor();
  await g.shot(shots.qr, { pc: true });
  let scanned;
  if (pc) scanned = await readQr(await qr.screenshot());
  await page.getByText('スキャンできませんか？').click();
  await page.getByText('2.アプリケーションを開き、キーを入力します').waitFor();
  const key = (await page.locator('#totp-key').innerText()).trim();
  assert.match(key, /^[A-Z2-7]{16,}$/, 'a base32 key');
  if (pc) assert.ok(scanned.startsWith('otpauth://totp/') && scanned.includes(`secret=${key}&`), `the QR code ${scanned} carries the key`);
  else if (shots.key) await g.shot(shots.key);
  await page.getByLabel('デバイス名').fill(pc ? 'Android' : 'iPhone');
  await page.getByLabel('ワンタイムパスワード（6桁）').fill(await freshCode(key));
  if (shots.code) await g.shot(shots.code, { pc: true });
  await page.getByRole('button', { name: '実行', exact: true }).click();
  return key;
}

/** The login's one-time password screen: a fresh code → 「トップページへ」. */
async function enterAppCode(page, g, step, key, shotName) {
  await g.screen(step, 'ワンタイムパスワード');
  await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await freshCode(key));
  if (shotName) await g.shot(shotName);
  await page.getByRole('button', { name: 'トップページへ', exact: true }).click();
}

/** daiwakenpo §2-4-1: ④ QR → ⑤ the key → ⑧ name and code 「実行」 → ⑨ top → ⑩–⑬ the check. */
async function daiwaApp(page, g, member, { userId, password, pc }) {
  const slug = 'daiwakenpo';
  const p = pc ? 'pc-2-4-1-3' : '2-4-1-2';
  const key = await setUpApp(page, g, {
    pc,
    shots: { step: '§2-4-1 ④', qr: `${p}-04-qr`, key: `${p}-05-key`, code: `${p}-08-code` },
  });
  const { nameLink } = await expectMemberTop(page, g, '§2-4-1 ⑨', member.name, { notice: false });
  await g.shot(`${p}-09-top`, { doc: false }); // the same screen as §2-3 ⑦
  await nameLink.click();
  await confirmLogout(page, g, '§2-4-1 ⑨ (logout)', member.name);
  await signIn(page, g, '§2-4-1 ⑪', slug, userId, password);
  await enterAppCode(page, g, '§2-4-1 ⑫', key, `${p}-12-otp`);
  await expectMemberTop(page, g, '§2-4-1 ⑬', member.name, { notice: false });
  await g.shot(`${p}-13-top`, { doc: false });
}

// --- kanekakenpo --------------------------------------------------------------------------------

/**
 * kanekakenpo 【1】–【11】: the top page, the letter's ID and password, 生年月日, 「同意する」,
 * the address (kept), the mailed link, 「更新」, 【8】 the method 「次へ」, 【9】 a new password,
 * 【10】 「初回ログインが完了しました」, 【11】 「ログアウト」. No user ID step.
 */
async function kanekaFirstLogin(page, g, member, { password, method, inbox }) {
  const slug = 'kanekakenpo';
  // 【1】 KOSMO Webへアクセスします
  await page.goto(wwwUrl(shared.portal, slug));
  const login = await expectPublicTop(page, g, '【1】', member.name);
  await g.shot('1-01-top', { firstLogin: true });
  await login.click();

  // 【2】 ユーザIDとパスワードを入力しログインします
  await g.screen('【2】', 'ログイン');
  await userIdField(page, slug).fill(member.user_id);
  await page.getByLabel('パスワード', { exact: true }).fill(member.password);
  await g.shot('1-02-login', { firstLogin: true });
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();

  // 【3】 ご自身の生年月日を入力します
  await g.screen('【3】', '生年月日の入力');
  await page.getByLabel('生年月日').fill(member.birthDate);
  await g.shot('1-03-birth-date', { firstLogin: true });
  await page.getByRole('button', { name: '次へ', exact: true }).click();

  // 【4】 利用規約に「同意する」を押します
  await g.screen('【4】', 'KOSMO Web 利用規約', { title: `利用規約｜${SOCIETIES[slug].displayName}` });
  await g.shot('1-04-terms', { firstLogin: true });
  await page.getByRole('button', { name: '同意する', exact: true }).click();

  // 【5】 メールアドレスを確認します (the change is optional: kept)
  const address = page.getByLabel('メールアドレス');
  await g.screen('【5】', 'メールアドレスの確認', { has: address });
  assert.equal(await address.inputValue(), member.email);
  await g.shot('1-05-email', { firstLogin: true });
  await page.getByRole('button', { name: '送信', exact: true }).click();

  // The screen that waits for the link, with 「更新」 (【7】).
  const refresh = page.getByRole('link', { name: '更新', exact: true });
  await g.screen('【6】', 'メールアドレスの確認', { has: refresh });
  await page.getByText(member.email, { exact: true }).waitFor();

  // 【6】 届いたメールを開き、メールアドレスの確認を完了します
  const mail = await inbox.next({ subject: 'メールアドレスの確認' });
  const link = findLink(mail.text, slug);
  assert.ok(link, `a link in 「${mail.subject}」:\n${mail.text}`);
  await shootMail(g, mail, '1-06-mail', { firstLogin: true });
  const tab = await page.context().newPage();
  try {
    await tab.goto(link);
    await tab.getByText('メールアドレスの確認が完了しました。').waitFor();
    await g.shot('1-06-confirmed', { firstLogin: true, of: tab });
  } finally {
    await tab.close();
  }

  // 【7】 元の画面に戻り更新します
  await g.shot('1-07-refresh', { firstLogin: true });
  await refresh.click();

  // 【8】 認証方法を選択します: 生体認証 / ワンタイムパスワード認証（アプリ）/（メール） → 「次へ」
  await g.screen('【8】', '認証方法の選択');
  const radios = page.getByRole('group', { name: '認証方法' }).getByRole('radio');
  assert.deepEqual(
    await Promise.all((await radios.all()).map((r) => r.evaluate((el) => el.labels[0].textContent.trim()))),
    ['生体認証', 'ワンタイムパスワード認証（アプリ）', 'ワンタイムパスワード認証（メール）'],
    '【1】 a.生体認証 b.ワンタイムパスワード認証（アプリ） C.ワンタイムパスワード認証（メール）',
  );
  await page.getByRole('radio', { name: methodLabel(slug, method), exact: true }).check();
  await g.shot('1-08-method', { firstLogin: true });
  await page.getByRole('button', { name: '次へ', exact: true }).click();

  // 【9】 新たなパスワードを設定します
  await g.screen('【9】', 'パスワード更新');
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByLabel('パスワード確認用').fill(password);
  await g.shot('1-09-password', { firstLogin: true });
  await page.getByRole('button', { name: '送信', exact: true }).click();

  // 【10】 初回ログインが完了しました
  const { logoutLink } = await expectMemberTop(page, g, '【10】', member.name, { notice: true });
  await page.getByText('初回ログイン設定は続きます。').waitFor();
  await page.getByText(`選択した認証方法「${methodLabel(slug, method)}」を設定します`).waitFor();
  await g.shot('1-10-done', { firstLogin: true });

  // 【11】 認証方法の設定を行うためログアウトします
  await logoutLink.click();
  await confirmLogout(page, g, '【11】', member.name, { shotName: '1-11-logout', afterShot: '1-11-top' });
}

/** kanekakenpo 【2-1】 (PC) / 【2-2】 (phone): login → 「登録」 → the name 「次へ」 → top. */
async function kanekaPasskey(page, g, member, { pc }) {
  const p = pc ? 'pc-2-1' : '2-2';
  // 【2】 生体認証の設定を行います (【3】–【5】 the device's prompts)
  await g.screen(`【${p}】【2】`, 'セキュリティキー登録', { has: page.getByRole('button', { name: '登録', exact: true }) });
  await g.shot(`${p}-02-setup`, { pc: true });
  await page.getByRole('button', { name: '登録', exact: true }).click();
  // 【2-1】【6】【7】 / 【2-2】【4】 the name instead of 「パスキー」 → 「次へ」
  const field = page.getByLabel('パスキーの名前');
  await g.screen(`【${p}】 name`, 'セキュリティキー登録', { has: field });
  assert.equal(await field.inputValue(), 'パスキー');
  await field.fill(pc ? '会社のパソコン' : 'testuser');
  await g.shot(pc ? `${p}-06-name` : `${p}-04-name`, { pc: true });
  await page.getByRole('button', { name: '次へ', exact: true }).click();
  // 【2-1】【8】 / 【2-2】【5】 the top page
  await expectMemberTop(page, g, `【${p}】 top`, member.name, { notice: false });
  await g.shot(pc ? `${p}-08-top` : `${p}-05-top`);
}

/** kanekakenpo 【2-3】 (phone) / 【2-4】 (PC with a phone): the QR code, the key or the scan, the code. */
async function kanekaApp(page, g, member, { pc }) {
  const p = pc ? 'pc-2-4' : '2-3';
  const key = await setUpApp(page, g, {
    pc,
    shots: pc
      ? { step: '【2-4】【4】', qr: `${p}-04-setup`, code: `${p}-07-code` }
      : { step: '【2-3】【4】', qr: `${p}-04-setup`, key: `${p}-05-key`, code: `${p}-08-code` },
  });
  await expectMemberTop(page, g, `【${p}】 top`, member.name, { notice: false });
  await g.shot(`${p}-top`, { doc: false }); // the same screen as 【2-2】【5】
  return key;
}

/** kanekakenpo 【2-6】: 【3】 the code mailed to the registered address → 「認証する」 → 【4】 top. */
async function kanekaMail(page, g, member, { inbox }) {
  // 【2-6】 is the same on a PC and a phone: the phone's pictures are the guide's.
  const p = '2-6';
  const field = page.getByLabel('ワンタイムパスワード（6桁）');
  await g.screen('【2-6】【3】', 'メール認証', { has: field });
  const mail = await inbox.next({ subject: 'ワンタイムパスワードのお知らせ' });
  const code = mail.text.match(/ワンタイムパスワード：(\d{6})/)?.[1];
  assert.ok(code, `a code in:\n${mail.text}`);
  await shootMail(g, mail, `${p}-03-mail`);
  await field.fill(code);
  await g.shot(`${p}-03-code`);
  await page.getByRole('button', { name: '認証する', exact: true }).click();
  await expectMemberTop(page, g, '【2-6】【4】', member.name, { notice: false });
  await g.shot(`${p}-04-top`, { doc: false }); // the same screen as 【2-2】【5】
}

// --- the tests ------------------------------------------------------------------------------------

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) {
    const { slug, name } = tenant;
    for (const method of SOCIETIES[slug].methods) {
      test(`${slug}'s guide with ${method} (${viewportName})`, { timeout: 150_000 }, async () => {
        const { portal, browser } = shared;
        const pc = viewportName === 'desktop';
        const page = await newPage(browser, VIEWPORTS[viewportName]);
        const g = walker(page, { slug, viewportName, method });
        try {
          if (method === 'passkey') await addAuthenticator(page);
          const vp = pc ? 'pc' : 'sp';
          const email = `${slug}.${SHORT[method]}.${vp}@example.jp`;
          const member = await addMember(portal, slug, { name, email });
          const inbox = await openInbox(portal, email);
          const password = uniquePassword('Guide');

          let userId;
          if (slug === 'daiwakenpo') {
            userId = `taro-${SHORT[method]}-${vp}`;
            await daiwaFirstLogin(page, g, member, { userId, password, method });
          } else {
            userId = member.user_id; // kanekakenpo: the letter's ID is kept
            await kanekaFirstLogin(page, g, member, { password, method, inbox });
          }

          // The next login: the user ID and the new password lead to the set-up, and only there.
          const setup = setupScreen(page, method);
          const loginShot = {
            daiwakenpo: { passkey: pc ? 'pc-2-3-3-03-login' : '2-3-2-03-login', totp: pc ? 'pc-2-4-1-3-03-login' : '2-4-1-2-03-login' },
            kanekakenpo: { passkey: pc ? 'pc-2-1-01-login' : '2-2-01-login', totp: pc ? 'pc-2-4-03-login' : '2-3-03-login', email_otp: pc ? 'pc-2-6-02-login' : '2-6-02-login' },
          }[slug][method];
          await signIn(page, g, 'the next login', slug, userId, password, { shotName: loginShot, firstLogin: true });
          await g.screen('the next login', setup.h1, { has: setup.has });
          await onlyTheSetUp(page, g, slug, userId, password, name, method, inbox);

          let key;
          if (slug === 'daiwakenpo' && method === 'passkey') await daiwaPasskey(page, g, member, { userId, password, pc });
          if (slug === 'daiwakenpo' && method === 'totp') await daiwaApp(page, g, member, { userId, password, pc });
          if (slug === 'kanekakenpo' && method === 'passkey') await kanekaPasskey(page, g, member, { pc });
          if (slug === 'kanekakenpo' && method === 'totp') key = await kanekaApp(page, g, member, { pc });
          if (slug === 'kanekakenpo' && method === 'email_otp') await kanekaMail(page, g, member, { inbox });

          if (slug === 'kanekakenpo') {
            // 【以上で設定が完了しました】: the next login asks for the factor set up, then the top page.
            await page.getByRole('link', { name, exact: true }).click();
            await confirmLogout(page, g, 'after the set-up', name);
            await signIn(page, g, 'a later login', slug, userId, password);
            if (method === 'passkey') {
              await g.screen('a later login', '生体認証');
              await page.getByRole('button', { name: '次へ', exact: true }).click();
            } else if (method === 'totp') {
              await enterAppCode(page, g, 'a later login', key);
            } else {
              await g.screen('a later login', 'メール認証');
              await page.getByLabel('ワンタイムパスワード（6桁）').fill((await inbox.next({ subject: 'ワンタイムパスワードのお知らせ' })).text.match(/ワンタイムパスワード：(\d{6})/)[1]);
              await page.getByRole('button', { name: '認証する', exact: true }).click();
            }
            await expectMemberTop(page, g, 'a later login', name, { notice: false });
          }
        } catch (e) {
          await screenshot(page, `guides-${slug}-${viewportName}-${SHORT[method]}-failure`).catch(() => {});
          throw e;
        } finally {
          await page.context().close();
        }
      });
    }
  }
}

// With PORTAL_TEST_GUIDE_IMAGES=1 (and every case run): each image docs/guides/<slug>.md
// shows was written by this run, each image written is shown, and no other is left there.
after(async () => {
  if (!GUIDE_IMAGES || written.size === 0) return;
  for (const slug of Object.keys(SOCIETIES)) {
    const doc = await readFile(path.join(GUIDE_DIR, `${slug}.md`), 'utf8').catch(() => '');
    const shown = new Set([...doc.matchAll(/\(img\/([^)]+)\.png\)/g)].map((m) => m[1]));
    for (const image of shown) assert.ok(written.has(image), `docs/guides/${slug}.md shows img/${image}.png, which this run did not write`);
    for (const image of written) {
      if (image.startsWith(`${slug}/`)) assert.ok(shown.has(image), `img/${image}.png is not shown in docs/guides/${slug}.md`);
    }
    for (const file of await readdir(path.join(GUIDE_DIR, 'img', slug))) {
      const image = `${slug}/${file.replace(/\.png$/, '')}`;
      assert.ok(written.has(image), `docs/guides/img/${image}.png was not written by this run: remove it`);
    }
  }
});
