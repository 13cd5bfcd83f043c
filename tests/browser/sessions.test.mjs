// Signed-in browsers and the sign-in history under 「ログイン方法変更」 (OWASP ASVS 5.0
// §7.5.2), as a member who is signed in on two browsers sees them:
//
//   two browsers  The member signs in on a second, separate browser (its own cookies, another
//                 screen and User-Agent), after one wrong password there. On the first,
//                 「ログイン方法変更」 lists both under 「ログイン中の端末」, 「この端末」 on the
//                 first and 「ログアウトさせる」 on the other only; 「最近のログイン履歴」 has the
//                 three sign-ins, the failure among them. 「ログアウトさせる」 → 「端末のログアウト」
//                 (「戻る」 keeps it) → 「ログアウトさせる」 → 「1台の端末をログアウトさせました。」.
//                 The second browser's next request (a reload) ends on the login form; the
//                 first goes on.
//   offer         After a password change (「更新」 → new password twice → 「実行」) the page
//                 offers 「ほかに1台の端末でログインしています。…」 with 「ほかの端末をすべて
//                 ログアウト」 → 「この端末以外の、次の端末をすべてログアウトさせます。…」 →
//                 「ログアウトさせる」; the second browser's next click ends on the login form.
//
// Right after a sign-in the society's step-up age (5 minutes) has not run out: both go
// straight to the confirmation, and the tests check that no step-up came in between
// (tests/e2e/sessions.rs covers the step-up itself).
// Each case on both societies, one on the phone and the other on the desktop (the second
// browser on the other screen), two tests at a time.
// Screenshots: target/screenshots/sessions-<case>-<slug>-<viewport>-<step>.png, the second
// browser's with the step `b-<step>`.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { STEP_UP, openLoginMethods } from './lib/factors.mjs';
import {
  INVALID_CREDENTIALS,
  enterCode,
  expectTopPage,
  openMenuItem,
  submitLogin,
  uniquePassword,
  userIdField,
  worded,
} from './lib/journeys.mjs';
import { newPage, screenshot } from './lib/server.mjs';
import { TENANTS, VIEWPORTS, closing, newMember, sharedPortal } from './lib/suite.mjs';

const shared = sharedPortal();

const SIGNED_IN = 'ログイン中の端末';
const HISTORY = '最近のログイン履歴';
const THIS_DEVICE = 'この端末';
const END_ONE = 'ログアウトさせる';
const END_OTHERS = 'ほかの端末をすべてログアウト';
const CONFIRM_TITLE = '端末のログアウト';
const CONFIRM_ONE = '次の端末をログアウトさせます。その端末では、次に操作したときにログイン画面に戻ります。';
const CONFIRM_ALL =
  'この端末以外の、次の端末をすべてログアウトさせます。それぞれの端末では、次に操作したときにログイン画面に戻ります。';
const ENDED_ONE = '1台の端末をログアウトさせました。';
const OFFER_ONE =
  'ほかに1台の端末でログインしています。必要に応じて、ほかの端末をすべてログアウトさせることができます。';
const PASSWORD_UPDATED = 'パスワードを更新しました。';
/** What 「方式」 calls the authenticator app, in each society's words (daiwakenpo 「OTP認証」). */
const APP_METHOD = { daiwakenpo: 'OTP認証', kanekakenpo: '認証アプリ' };
const signedInOk = (slug) => `ログイン（${APP_METHOD[slug]}）`;
const wrongPassword = (slug) => worded(slug, '失敗：ユーザ IDまたはパスワードの誤り');

/** The first browser: the test machine's headless Chromium, as the portal names it. */
const FIRST_BROWSER = 'Chrome（Linux）';

/**
 * The second browser on the screen other than the first one's, with a User-Agent of its
 * own (what the portal names a browser by) and the name the portal gives it.
 */
const SECOND = {
  // The first is on the phone: the second is a Windows PC with Firefox.
  phone: {
    screen: VIEWPORTS.desktop,
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
    label: 'Firefox（Windows 10）',
    viewportName: 'desktop',
  },
  // The first is on the desktop: the second is an iPhone with Safari.
  desktop: {
    screen: VIEWPORTS.phone,
    userAgent:
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    label: 'Safari（iPhone）',
    viewportName: 'phone',
  },
};

/** A time as the portal shows it (YYYY/MM/DD HH:MM, Japan) as a Date. */
function parseJst(text) {
  const m = text.match(/^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2})$/);
  assert.ok(m, `a time as YYYY/MM/DD HH:MM: ${text}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:00+09:00`);
}

/** Asserts that `text` (YYYY/MM/DD HH:MM, Japan) is a time of the last few minutes. */
function assertRecent(text, what) {
  const ms = Date.now() - parseJst(text).getTime();
  assert.ok(ms > -60_000 && ms < 5 * 60_000, `${what} ${text} is a time of the last few minutes`);
}

/** The items of the list under 「ログイン中の端末」. */
function deviceItems(page) {
  return page.getByRole('list', { name: SIGNED_IN, exact: true }).getByRole('listitem');
}

/**
 * What one item of 「ログイン中の端末」 tells, from its visible text: the browser,
 * whether it is 「この端末」, and the facts of its second line (「ログイン」, 「最終利用」,
 * 「IPアドレス」, 「方式」).
 */
async function readDevice(item) {
  const name = (await item.locator('.device-name').innerText()).trim();
  const current = name.endsWith(THIS_DEVICE);
  const browser = current ? name.slice(0, -THIS_DEVICE.length).trim() : name;
  return { browser, current, facts: await factsOf(item) };
}

/** The 「名前：値」 facts of an item's second line, one per span. */
async function factsOf(item) {
  const facts = {};
  for (const part of await item.locator('.meta span').allInnerTexts()) {
    const [key, ...value] = part.split('：');
    facts[key.trim()] = value.join('：').trim();
  }
  return facts;
}

/** The items of the list under 「最近のログイン履歴」, each as [日時, result, ブラウザ, IPアドレス]. */
async function historyRows(page) {
  const items = page.getByRole('list', { name: HISTORY, exact: true }).getByRole('listitem');
  const rows = [];
  for (const item of await items.all()) {
    const result = (await item.locator('.device-name').innerText()).trim();
    const facts = await factsOf(item);
    rows.push([facts['日時'], result, facts['ブラウザ'], facts['IPアドレス']]);
  }
  return rows;
}

/**
 * The second browser: a new browser context (cookies of its own) on the other screen with
 * another User-Agent; `{page, shot}` as `closing` takes it.
 */
async function secondBrowser(m, viewportName, label) {
  const second = SECOND[viewportName];
  const page = await newPage(shared.browser, { ...second.screen, userAgent: second.userAgent });
  const shot = (step) => screenshot(page, `${label}-${m.slug}-${viewportName}-b-${step}`);
  return { page, shot, label: second.label };
}

/** The member signs in on `b` with the password and a fresh code of the app. */
async function signIn(b, m) {
  await submitLogin(b.page, shared.portal, m.slug, m.userId, m.password);
  await enterCode(b.page, m.totpKey);
  await expectTopPage(b.page, m.member.name);
}

/** The confirmation 「端末のログアウト」 right after a sign-in: no step-up came first. */
async function expectConfirmation(page, lead) {
  await page.getByRole('heading', { name: CONFIRM_TITLE, level: 1 }).waitFor();
  assert.match(new URL(page.url()).pathname, /^\/login-methods\/sessions\/[^/]+\/end$/);
  assert.equal(await page.getByText(STEP_UP).count(), 0, 'no step-up right after a sign-in');
  await page.getByText(lead, { exact: true }).waitFor();
}

/** The browsers the confirmation page lists, by name. */
async function confirmedBrowsers(page) {
  return (await page.getByRole('main').locator('.device-name').allInnerTexts()).map((t) => t.trim());
}

/** Asserts that `page` (a signed-out browser) is on the login form. */
async function expectLoginForm(page, name) {
  await page.getByRole('heading', { name: 'ログイン', exact: true, level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/login');
  await userIdField(page).waitFor();
  await page.getByLabel('パスワード', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'ログイン', exact: true }).waitFor();
  assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, 'not signed in');
}

/** The first browser still works: 「ログイン方法変更」 lists it alone, as 「この端末」. */
async function expectOnlyThisDevice(page) {
  await openLoginMethods(page);
  const items = deviceItems(page);
  assert.equal(await items.count(), 1, 'only this browser is signed in');
  const only = await readDevice(items.first());
  assert.deepEqual([only.browser, only.current], [FIRST_BROWSER, true]);
  assert.equal(await page.getByRole('link', { name: END_OTHERS }).count(), 0, 'nothing left to sign out');
  assert.equal(await page.getByRole('link', { name: new RegExp(`${END_ONE}$`) }).count(), 0);
}

function twoBrowsers(tenant, viewportName) {
  const { slug } = tenant;
  test(`two browsers: the other one is signed out from 「ログイン中の端末」 on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
    const m = await newMember(shared, tenant, viewportName, 'sessions-two');
    const b = await secondBrowser(m, viewportName, 'sessions-two');
    await closing([m, b], async () => {
      const { page, shot, member } = m;

      // The second browser: a wrong password first, then the member signs in and opens a
      // page for signed-in members only.
      await submitLogin(b.page, shared.portal, slug, m.userId, `${m.password}x`);
      await b.page.getByRole('alert').filter({ hasText: worded(slug, INVALID_CREDENTIALS) }).waitFor();
      await signIn(b, m);
      await openMenuItem(b.page, 'プロフィール変更');
      await b.page.getByRole('heading', { name: 'プロフィール変更', level: 1 }).waitFor();
      await b.shot('1-signed-in');

      // The first browser: 「ログイン方法変更」 lists both, 「この端末」 on this one only.
      await openLoginMethods(page);
      await page.getByRole('heading', { name: SIGNED_IN, level: 2 }).waitFor();
      const items = deviceItems(page);
      assert.equal(await items.count(), 2, 'two browsers signed in');
      const devices = [];
      for (const item of await items.all()) devices.push({ item, ...(await readDevice(item)) });
      const mine = devices.filter((d) => d.current);
      const others = devices.filter((d) => !d.current);
      assert.equal(mine.length, 1, `「${THIS_DEVICE}」 on one browser exactly`);
      assert.equal(mine[0].browser, FIRST_BROWSER);
      assert.equal(others[0].browser, b.label);
      for (const d of devices) {
        assertRecent(d.facts['ログイン日時'], `${d.browser} 「ログイン日時」`);
        assertRecent(d.facts['最終利用'], `${d.browser} 「最終利用」`);
        assert.equal(d.facts['IPアドレス'], '127.0.0.1');
        assert.equal(d.facts['方式'], APP_METHOD[slug]);
      }
      // 「ログアウトさせる」 on the other browser only, named after it and its sign-in time.
      assert.equal(await mine[0].item.getByRole('link').count(), 0, 'this browser has no 「ログアウトさせる」');
      const since = others[0].facts['ログイン日時'];
      const endOther = page.getByRole('link', { name: `${b.label}（${since}）を${END_ONE}`, exact: true });
      assert.equal(await others[0].item.getByRole('link').count(), 1);
      assert.equal((await others[0].item.getByRole('link').innerText()).trim(), END_ONE);
      assert.equal(await endOther.count(), 1);
      assert.equal(await page.getByRole('link', { name: END_OTHERS, exact: true }).count(), 1);

      // 「最近のログイン履歴」, newest first: the second browser's sign-in and its wrong
      // password, then this browser's first login.
      const history = await historyRows(page);
      assert.deepEqual(
        history.map(([, result, browser, ip]) => [result, browser, ip]),
        [
          [signedInOk(slug), b.label, '127.0.0.1'],
          [wrongPassword(slug), b.label, '127.0.0.1'],
          [signedInOk(slug), FIRST_BROWSER, '127.0.0.1'],
        ],
      );
      for (const [at] of history) assertRecent(at, '「日時」');
      await shot('1-login-methods');

      // 「ログアウトさせる」 → the confirmation lists the other browser; 「戻る」 keeps it.
      await endOther.click();
      await expectConfirmation(page, CONFIRM_ONE);
      assert.deepEqual(await confirmedBrowsers(page), [b.label]);
      await page.getByRole('main').getByText(`ログイン日時：${since}`).waitFor();
      await page.getByRole('button', { name: END_ONE, exact: true }).waitFor();
      await shot('2-confirm');
      await page.getByRole('link', { name: '戻る', exact: true }).click();
      await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
      assert.equal(await deviceItems(page).count(), 2, '「戻る」 signed nobody out');

      // Again, and 「ログアウトさせる」 this time.
      await endOther.click();
      await expectConfirmation(page, CONFIRM_ONE);
      await page.getByRole('button', { name: END_ONE, exact: true }).click();
      await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/login-methods');
      await page.getByRole('status').filter({ hasText: ENDED_ONE }).waitFor();
      assert.equal(await deviceItems(page).count(), 1);
      assert.equal(await endOther.count(), 0);
      await shot('3-ended');

      // The second browser: its next request (a reload of the profile) ends on the login form.
      await b.page.reload();
      await expectLoginForm(b.page, member.name);
      await b.shot('2-signed-out');

      // The first browser goes on.
      await expectOnlyThisDevice(page);
      await page.goto(shared.portal.url(slug, '/'));
      await expectTopPage(page, member.name);
    });
  });
}

function offerAfterPasswordChange(tenant, viewportName) {
  const { slug } = tenant;
  test(`offer after a password change: every other browser is signed out on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
    const m = await newMember(shared, tenant, viewportName, 'sessions-offer');
    const b = await secondBrowser(m, viewportName, 'sessions-offer');
    await closing([m, b], async () => {
      const { page, shot, member } = m;
      await signIn(b, m);
      await b.shot('1-signed-in');

      // 「ログイン方法変更」 → パスワード 「更新」 → a new password twice → 「実行」.
      await openLoginMethods(page);
      assert.equal(await page.getByText(OFFER_ONE).count(), 0, 'no offer before a change');
      await page.getByRole('link', { name: '更新', exact: true }).click();
      const confirm = page.getByLabel('パスワード確認用');
      await confirm.waitFor();
      assert.equal(await page.getByText(STEP_UP).count(), 0, 'no step-up right after a sign-in');
      const newPassword = uniquePassword('Tsubaki');
      await page.getByLabel('パスワード', { exact: true }).fill(newPassword);
      await confirm.fill(newPassword);
      await page.getByRole('button', { name: '実行', exact: true }).click();

      // Back on 「ログイン方法変更」: updated, and the offer with its link.
      await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
      await page.getByRole('status').filter({ hasText: PASSWORD_UPDATED }).waitFor();
      const offer = page.getByRole('main').locator('div').filter({ has: page.getByText(OFFER_ONE, { exact: true }) });
      await offer.first().waitFor();
      const offered = offer.last().getByRole('link', { name: END_OTHERS, exact: true });
      assert.equal(await offered.count(), 1, `「${END_OTHERS}」 in the offer`);
      assert.equal(await deviceItems(page).count(), 2, 'the password change signed nobody out by itself');
      await shot('1-offer');

      // 「ほかの端末をすべてログアウト」 → the confirmation lists the second browser only.
      await offered.click();
      await expectConfirmation(page, CONFIRM_ALL);
      assert.equal(new URL(page.url()).pathname, '/login-methods/sessions/others/end');
      assert.deepEqual(await confirmedBrowsers(page), [b.label]);
      await page.getByRole('link', { name: '戻る', exact: true }).waitFor();
      await shot('2-confirm-all');
      await page.getByRole('button', { name: END_ONE, exact: true }).click();

      await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
      await page.getByRole('status').filter({ hasText: ENDED_ONE }).waitFor();
      assert.equal(await page.getByText(OFFER_ONE).count(), 0, 'the offer is gone');
      assert.equal(await deviceItems(page).count(), 1);
      await shot('3-ended');

      // The second browser: its next click (「ログイン方法変更」 in the menu) ends on the login form.
      await openMenuItem(b.page, 'ログイン方法変更');
      await expectLoginForm(b.page, member.name);
      await b.shot('2-signed-out');

      // The first browser goes on, on the new password's session.
      await expectOnlyThisDevice(page);
      await page.goto(shared.portal.url(slug, '/'));
      await expectTopPage(page, member.name);
    });
  });
}

// Each case on every society, the first browser on the phone in one case and on the desktop
// in the other (daiwakenpo: two browsers on the phone, the offer on the desktop; kanekakenpo
// the other way round).
describe('signed-in browsers', { concurrency: 2 }, () => {
  TENANTS.forEach((tenant, i) => {
    const [first, second] = i % 2 === 0 ? ['phone', 'desktop'] : ['desktop', 'phone'];
    twoBrowsers(tenant, first);
    offerAfterPasswordChange(tenant, second);
  });
});
