// 「設定」 of the society admin console in Chromium, by visible labels: an invited admin
// (password and an authenticator app, oathtool) raises 「パスワードの最小文字数」 from 8 to
// 12 in a draft, reads 「変更内容の確認と公開」 (what changes for members, who is affected,
// the security notes, the table of items), looks at the member pages in the six frames of
// 「プレビュー」, presses 「公開」, and later takes it back with 「この版に戻す」. A member of
// daiwakenpo who stopped at the first login's password step sees each step at once when
// the page is loaded again: 8 characters before publishing (the draft does not leak), a
// 10-character password refused with 「12文字以上」 after 「公開」, the same password accepted
// after 「この版に戻す」. Bad input (「abc」) is refused next to the field with status 400 and
// saves no draft; a saved draft can be thrown away with 「下書きを破棄」.
// Laptop (1280x800) and tablet (820x1180). Screenshots: target/screenshots/settings-*.png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { methodLabel, portalCli, submitLogin } from './lib/journeys.mjs';
import { addMember } from './lib/members.mjs';
import { newPage, screenshot } from './lib/server.mjs';
import { VIEWPORTS, sharedPortal } from './lib/suite.mjs';
import { freshCode } from './lib/totp.mjs';

const SLUG = 'daiwakenpo';
const ADMIN_PASSWORD = 'Console-pass-2026!';
/** 10 characters: enough under the society's rule (8), too short under the draft's (12). */
const TEN = 'Kx7#mQ2!pL';
const SCREENS = {
  laptop: { viewport: { width: 1280, height: 800 } },
  tablet: { viewport: { width: 820, height: 1180 }, hasTouch: true },
};
/** What the console says about the password rule (admin-ui/locales/ja.toml [settings]). */
const TEXT = {
  noDraft: '下書きはありません。ここに表示されているのは現在公開中の設定です。',
  saved: '下書きを保存しました。まだ会員には反映されていません。',
  discarded: '下書きを破棄しました。公開中の設定は変わっていません。',
  published: '公開しました。会員のページにはすぐに反映されます',
  restored: '以前の版に戻して公開しました。会員のページにはすぐに反映されます。',
  toTwelve: 'パスワードは12文字以上になります（現在は8文字以上）。',
  backToEight: 'パスワードは8文字以上になります（現在は12文字以上）。',
  notANumber: '半角または全角の数字で入力してください。',
  oneError: '入力内容に誤りが 1 件あります。',
  notSaved: '下書きは保存されていません。',
  resetByEmail: 'メールだけでパスワードと二要素認証の両方を変えられます',
};
/** The six frames of 「プレビュー」 and what each must show of the member page inside. */
const FRAMES = [
  ['ログイン画面', (f) => [f.getByRole('heading', { name: 'ログイン', exact: true }), f.getByLabel('ユーザ ID', { exact: true })]],
  ['トップページ（ログイン前）', (f) => [f.getByRole('heading', { name: '大和証券グループ健康保険組合', level: 1 })]],
  ['会員トップページ（ログイン後）', (f) => [f.getByRole('heading', { name: 'サービスメニュー' }), f.getByText('医療費のお知らせ').first()]],
].flatMap(([page, expect]) => [
  [`${page}（スマートフォン）`, expect],
  [`${page}（パソコン）`, expect],
]);

const shared = sharedPortal();
let serial = 0;

/**
 * `portal admin create`, then the invitation in `page`: password, 「スキャンできませんか？」
 * key into oathtool, 「実行」, dashboard. `shot(step)` is called for each page.
 */
async function inviteAndSignIn(page, shot) {
  serial += 1;
  const email = `settings${serial}.${process.pid}@daiwa.example.jp`;
  const { stdout } = await portalCli(shared.portal, ['admin', 'create', SLUG, email]);
  const token = JSON.parse(stdout).setup_url.split('token=')[1];
  await page.goto(shared.portal.url(SLUG, `/admin/invite?token=${token}`));
  await page.getByText(email).waitFor();
  await shot('0-invite');
  await page.getByLabel('パスワード', { exact: true }).fill(ADMIN_PASSWORD);
  await page.getByLabel('パスワード確認用').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'パスワードを設定' }).click();
  await page.getByText('スキャンできませんか？').click();
  const key = (await page.locator('#totp-key').textContent()).trim();
  await shot('0-totp');
  await page.getByLabel('デバイス名').fill('事務所のパソコン');
  await page.getByLabel('認証コード').fill(await freshCode(key));
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();
  await shot('0-dashboard');
  return email;
}

/** 「設定」 in the console's menu: the form, with its heading. */
async function openSettings(page) {
  await page.getByRole('navigation', { name: '管理メニュー' }).getByRole('link', { name: '設定', exact: true }).click();
  await page.getByRole('heading', { name: '設定', level: 1 }).waitFor();
}

/** The field 「パスワードの最小文字数」 of the settings form. */
const minLength = (page) => page.getByLabel('パスワードの最小文字数', { exact: true });

/** A card of the review (a section under an h2 named `title`). */
function card(page, title) {
  return page.locator('section').filter({ has: page.getByRole('heading', { name: title, level: 2, exact: true }) });
}

/** 「下書きを保存」; resolves to the HTTP status of the form's POST (303 to the review when saved). */
async function saveDraft(page) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/admin/settings'),
    page.getByRole('button', { name: '下書きを保存', exact: true }).click(),
  ]);
  await page.waitForLoadState();
  return response.status();
}

/**
 * The page at its current address on a tablet: a second browser context with the admin's
 * cookies (same browser, same session), shot as settings-tablet-<step>.
 */
async function tabletShot(page, step, ready) {
  const state = await page.context().storageState();
  const tablet = await newPage(shared.browser, { ...SCREENS.tablet, storageState: state });
  try {
    await tablet.goto(page.url());
    await ready(tablet);
    await screenshot(tablet, `settings-tablet-${step}`);
  } finally {
    await tablet.context().close();
  }
}

/**
 * A new member of daiwakenpo walks the first login up to the password step: the letter's
 * ID and password, 生年月日, 「同意する」, a user ID and the app, 「実行」.
 */
async function memberAtPasswordStep(page) {
  const member = await addMember(shared.portal, SLUG, { name: 'セッテイ ハナコ' });
  await submitLogin(page, shared.portal, SLUG, member.user_id, member.password);
  await page.getByLabel('生年月日').fill(member.birthDate);
  await page.getByRole('button', { name: '次へ' }).click();
  await page.getByRole('button', { name: '同意する' }).click();
  serial += 1;
  await page.getByLabel('ユーザ ID', { exact: true }).fill(`stg-${process.pid % 1000}${serial}x`.padEnd(8, 'z').slice(0, 13));
  await page.getByRole('radio', { name: methodLabel(SLUG, 'totp'), exact: true }).check();
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByLabel('パスワード確認用').waitFor();
  return member;
}

/** The member's password step loaded again (the member pressing reload): its hint. */
async function reloadPasswordStep(page) {
  await page.goto(shared.portal.url(SLUG, '/login/password'));
  await page.getByRole('heading', { name: 'パスワード更新', level: 1 }).waitFor();
  return (await page.locator('#password-hint').innerText()).trim();
}

/** `password` twice, 「送信」. */
async function submitPassword(page, password) {
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByLabel('パスワード確認用').fill(password);
  await page.getByRole('button', { name: '送信', exact: true }).click();
}

test('a stricter password rule is drafted, reviewed, previewed, published and taken back; a member at the password step follows each step at once', { timeout: 180_000 }, async () => {
  const { browser } = shared;
  const admin = await newPage(browser, SCREENS.laptop);
  const member = await newPage(browser, VIEWPORTS.phone);
  const shot = (step) => screenshot(admin, `settings-laptop-${step}`);
  const memberShot = (step) => screenshot(member, `settings-member-${step}`);
  try {
    // The member stops at the password step: the society's rule, 8 characters.
    await memberAtPasswordStep(member);
    assert.match(await reloadPasswordStep(member), /^8文字以上64文字以内/);
    await memberShot('1-before');

    const email = await inviteAndSignIn(admin, shot);

    // 「設定」: the published settings, grouped; nothing drafted yet.
    await openSettings(admin);
    await admin.getByText(TEXT.noDraft).waitFor();
    for (const legend of ['二要素認証', 'パスワードの規則', 'ログインの失敗とロック', '表示と連絡先']) {
      await admin.getByRole('group', { name: legend, exact: true }).waitFor();
    }
    assert.equal(await minLength(admin).inputValue(), '8');
    assert.ok(await admin.getByRole('checkbox', { name: '二要素認証を必須にする' }).isChecked(), 'daiwakenpo requires a second factor');
    assert.ok(await admin.getByRole('checkbox', { name: 'よく使われるパスワードを禁止する' }).isChecked());
    assert.equal(
      await admin.getByRole('navigation', { name: '設定の手順' }).getByRole('link', { name: '設定の編集' }).getAttribute('aria-current'),
      'page',
    );
    await shot('1-form');
    await tabletShot(admin, '1-form', (p) => minLength(p).waitFor());

    // 12 characters → 「下書きを保存」 → the review.
    await minLength(admin).fill('12');
    assert.equal(await saveDraft(admin), 303);
    assert.equal(new URL(admin.url()).pathname, '/admin/settings/review');
    await admin.getByRole('heading', { name: '変更内容の確認と公開', level: 1 }).waitFor();
    assert.equal((await admin.getByRole('status').innerText()).trim(), TEXT.saved);
    const summary = await card(admin, '会員にとって変わること').getByRole('listitem').allInnerTexts();
    assert.deepEqual(summary.map((s) => s.trim()), [TEXT.toTwelve]);
    assert.match(await card(admin, '影響を受ける会員').innerText(), /対象になりうる利用中の会員：\d+人/);
    assert.ok((await card(admin, 'この設定のセキュリティ上の注意').innerText()).includes(TEXT.resetByEmail));
    const row = card(admin, '変更する項目').getByRole('row', { name: /パスワードの最小文字数/ });
    assert.deepEqual((await row.getByRole('cell').allInnerTexts()).map((c) => c.trim()), ['8', '12']);
    await admin.getByRole('button', { name: '公開', exact: true }).waitFor();
    await admin.getByRole('button', { name: '下書きを破棄', exact: true }).waitFor();
    await shot('2-review');
    await tabletShot(admin, '2-review', (p) => p.getByRole('button', { name: '公開', exact: true }).waitFor());

    // The draft does not reach members.
    assert.match(await reloadPasswordStep(member), /^8文字以上/, 'the draft leaked to the member side');

    // 「プレビュー」: the member pages as the draft shows them, phone and PC, in six frames.
    await admin.getByRole('link', { name: '公開する前に、会員の画面をプレビューで確認する' }).click();
    await admin.getByRole('heading', { name: 'プレビュー', level: 1 }).waitFor();
    assert.equal(await admin.locator('iframe').count(), 6);
    for (const [title, expect] of FRAMES) {
      const frameElement = admin.locator(`iframe[title="${title}"]`);
      await frameElement.scrollIntoViewIfNeeded(); // the frames load lazily
      const frame = admin.frameLocator(`iframe[title="${title}"]`);
      for (const locator of expect(frame)) await locator.waitFor();
    }
    const login = admin.frameLocator('iframe[title="ログイン画面（スマートフォン）"]');
    await login.getByRole('button', { name: 'ログイン', exact: true }).waitFor();
    await admin.frameLocator('iframe[title="会員トップページ（ログイン後）（パソコン）"]')
      .getByRole('link', { name: '見本 太郎' }).waitFor();
    // The PC page is drawn 1280 px wide and shown at half size; the phone at 390 px.
    const pcBox = await admin.locator('iframe[title="ログイン画面（パソコン）"]').boundingBox();
    const phoneBox = await admin.locator('iframe[title="ログイン画面（スマートフォン）"]').boundingBox();
    assert.equal(Math.round(pcBox.width), 640);
    assert.equal(Math.round(phoneBox.width), 390);
    await admin.evaluate(() => window.scrollTo(0, 0));
    await shot('3-preview');

    // 「公開」 from the review.
    await admin.getByRole('navigation', { name: '設定の手順' }).getByRole('link', { name: '変更内容の確認と公開' }).click();
    await admin.getByRole('button', { name: '公開', exact: true }).click();
    await admin.getByRole('heading', { name: '公開履歴', level: 1 }).waitFor();
    assert.equal(new URL(admin.url()).pathname, '/admin/settings/history');
    assert.ok((await admin.getByRole('status').innerText()).startsWith(TEXT.published));
    const second = admin.locator('section.revision').filter({ has: admin.getByRole('heading', { name: /^第2版/ }) });
    assert.equal((await second.getByRole('heading').innerText()).trim(), '第2版 公開中');
    assert.ok((await second.innerText()).includes(email), 'who published it');
    assert.equal(await second.getByRole('link', { name: 'この版に戻す' }).count(), 0, 'the live revision cannot be restored');
    const first = admin.locator('section.revision').filter({ has: admin.getByRole('heading', { name: '第1版', exact: true }) });
    await first.getByRole('link', { name: 'この版に戻す' }).waitFor();
    await shot('4-history-published');

    // At once on the member side: 12 characters, and TEN refused next to the field.
    assert.match(await reloadPasswordStep(member), /^12文字以上/);
    await submitPassword(member, TEN);
    const refused = member.getByRole('alert').filter({ hasText: '12文字以上' });
    await refused.waitFor();
    assert.equal((await refused.innerText()).trim(), 'パスワードは12文字以上で入力してください。');
    await memberShot('2-refused');

    // 「この版に戻す」 on 第1版: what changes back, then the button.
    await first.getByRole('link', { name: 'この版に戻す' }).click();
    await admin.getByRole('heading', { name: '第1版に戻す', level: 1 }).waitFor();
    assert.equal(new URL(admin.url()).pathname, '/admin/settings/history/1');
    const back = await card(admin, '会員にとって変わること').getByRole('listitem').allInnerTexts();
    assert.deepEqual(back.map((s) => s.trim()), [TEXT.backToEight]);
    await shot('5-restore');
    await admin.getByRole('button', { name: 'この版に戻す', exact: true }).click();
    await admin.getByRole('heading', { name: '公開履歴', level: 1 }).waitFor();
    assert.equal((await admin.getByRole('status').innerText()).trim(), TEXT.restored);
    const third = admin.locator('section.revision').filter({ has: admin.getByRole('heading', { name: /^第3版/ }) });
    assert.equal((await third.getByRole('heading').innerText()).trim(), '第3版 公開中');
    assert.match(await third.innerText(), /戻した版\s*第1版/);
    assert.equal(await admin.getByText('公開中', { exact: true }).count(), 1, 'one live revision');
    await shot('6-history-restored');

    // At once on the member side again: 8 characters, TEN accepted, on to the e-mail step.
    assert.match(await reloadPasswordStep(member), /^8文字以上/);
    await submitPassword(member, TEN);
    await member.getByLabel('メールアドレス').waitFor();
    await memberShot('3-accepted');
  } catch (e) {
    await screenshot(admin, 'settings-laptop-failure').catch(() => {});
    await screenshot(member, 'settings-member-failure').catch(() => {});
    throw e;
  } finally {
    await admin.context().close();
    await member.context().close();
  }
});

for (const [screenName, screen] of Object.entries(SCREENS)) {
  test(`「abc」 as the minimum length is refused next to the field and saves nothing; a draft is thrown away with 「下書きを破棄」 (${screenName})`, { timeout: 90_000 }, async () => {
    const page = await newPage(shared.browser, screen);
    const shot = (step) => screenshot(page, `settings-${screenName}-${step}`);
    try {
      await inviteAndSignIn(page, async () => {});
      await openSettings(page);
      await page.getByText(TEXT.noDraft).waitFor();

      await minLength(page).fill('abc');
      assert.equal(await saveDraft(page), 400);
      const error = page.locator('#password__min_length-error');
      assert.equal(await error.getAttribute('role'), 'alert');
      assert.equal((await error.innerText()).trim(), TEXT.notANumber);
      // Next to the field: described by it, right under it.
      assert.equal(await minLength(page).getAttribute('aria-invalid'), 'true');
      assert.match(await minLength(page).getAttribute('aria-describedby'), /\bpassword__min_length-error\b/);
      const fieldBox = await minLength(page).boundingBox();
      const errorBox = await error.boundingBox();
      assert.ok(errorBox.y >= fieldBox.y + fieldBox.height && errorBox.y - (fieldBox.y + fieldBox.height) < 40, 'the message is right under the field');
      const summary = page.locator('.form-error[role="alert"]');
      const text = (await summary.innerText()).trim();
      assert.ok(text.startsWith(TEXT.oneError) && text.includes(TEXT.notSaved), text);
      assert.equal(await minLength(page).inputValue(), 'abc', 'what was typed is kept');
      await shot('form-error');

      // Nothing was saved: the review has no draft.
      await page.getByRole('navigation', { name: '設定の手順' }).getByRole('link', { name: '変更内容の確認と公開' }).click();
      await page.getByText(TEXT.noDraft).waitFor();
      assert.equal(await page.getByRole('button', { name: '公開', exact: true }).count(), 0);

      // A valid draft, then 「下書きを破棄」: back to the published settings.
      await page.getByRole('navigation', { name: '設定の手順' }).getByRole('link', { name: '設定の編集' }).click();
      await minLength(page).fill('10');
      assert.equal(await saveDraft(page), 303);
      await page.getByText(TEXT.saved).waitFor();
      await page.getByRole('button', { name: '下書きを破棄', exact: true }).click();
      await page.getByRole('heading', { name: '設定', level: 1 }).waitFor();
      assert.equal((await page.getByRole('status').innerText()).trim(), TEXT.discarded);
      await page.getByText(TEXT.noDraft).waitFor();
      assert.equal(await minLength(page).inputValue(), '8');
      await shot('discarded');
    } catch (e) {
      await shot('failure').catch(() => {});
      throw e;
    } finally {
      await page.context().close();
    }
  });
}
