// What a society's clerk changes in the admin console besides members, in Chromium, by
// visible labels (laptop 1280x800 for the console, a phone for the member):
//
// 1. 「設定」 → 「デザイン」: the contrast table (8.40:1 for white on daiwakenpo's blue), a
//    too-light blue refused with its ratio, then a new logo (a PNG drawn here) and a darker
//    blue saved; 「サービスメニュー」 → 「サービスを追加」 with an SVG icon (one with
//    `onload=` refused first); 「変更内容の確認と公開」 → 「公開」. A member on a phone sees
//    neither before 「公開」, and both (loaded) after it.
// 2. 「利用規約」 (kanekakenpo): 1 member of 1 accepted the current version; a new version is
//    written, checked in the phone and PC frames, published (0人); the member signs in again,
//    accepts it on the terms page and the count moves (1人); the evidence CSV names them.
// 3. 「一括登録」 and 「一括パスワードリセット」 (daiwakenpo): roster-problems.csv reports lines
//    8–11 and offers no 「取り込む」 (11 because 既存 会員 was registered first with
//    「会員登録」); roster-1000-sjis-crlf.csv reads as Shift_JIS, 1000件, is imported, and its
//    login CSV is handed out once; two of its user IDs are reset by the default rule.
//
// Screenshots: target/screenshots/console-{look,terms,import}-*.png

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import {
  CONSOLE_SCREEN,
  csvLines,
  file,
  inviteAdmin,
  loadedWidth,
  openConsoleMenu,
  openSettingsStep,
  png,
} from './lib/console.mjs';
import { enterCode, expectTopPage, logout, submitLogin } from './lib/journeys.mjs';
import { newPage, repoRoot, screenshot } from './lib/server.mjs';
import { TENANTS, closing, newMember, sharedPortal } from './lib/suite.mjs';

const DAIWA = TENANTS.find((t) => t.slug === 'daiwakenpo');
const KANEKA = TENANTS.find((t) => t.slug === 'kanekakenpo');
const ROSTERS = path.join(repoRoot, 'tests', 'fixtures', 'roster');

/** A service icon: a plain circle, nothing active in it. */
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="9" fill="#0b4f8a"/></svg>';
/** The same with an event handler: must be refused. */
const ACTIVE_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" onload="alert(1)"><circle cx="12" cy="12" r="9" fill="#0b4f8a"/></svg>';

const shared = sharedPortal();
let serial = 0;

/** A new admin of `slug` signed in on a laptop; `shot(step)` shoots `console-<label>-<step>`. */
async function signedInAdmin(slug, label) {
  serial += 1;
  const page = await newPage(shared.browser, CONSOLE_SCREEN);
  const shot = (step) => screenshot(page, `console-${label}-${step}`);
  const domain = slug === 'kanekakenpo' ? 'kaneka.example.jp' : 'daiwa.example.jp';
  const email = `${label}${serial}.${process.pid}@${domain}`;
  try {
    await inviteAdmin(shared.portal, page, slug, email, { shot: (s) => shot(`0-${s}`) });
  } catch (e) {
    await shot('failure').catch(() => {});
    await page.context().close();
    throw e;
  }
  return { page, shot, email };
}

/** Presses the submit button `name` and resolves to the status of the form's POST to `pathname`. */
async function submit(page, name, pathname) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === pathname),
    page.getByRole('button', { name, exact: true }).click(),
  ]);
  await page.waitForLoadState();
  return response.status();
}

/** The trimmed texts of the cells (th and td) of `row`. */
async function cellTexts(row) {
  return (await row.locator('th, td').allInnerTexts()).map((c) => c.trim());
}

test('「デザイン」 refuses a pale blue with its ratio, takes a new logo; a service with an SVG icon is added; after 「公開」 a member on a phone sees both', { timeout: 120_000 }, async () => {
  const member = await newMember(shared, DAIWA, 'phone', 'console-look');
  const { page: admin, shot } = await signedInAdmin(DAIWA.slug, 'look');
  await closing([member, { page: admin, shot }], async () => {
    // 設定 → 「デザイン」: the contrast of the published colours.
    await openConsoleMenu(admin, '設定');
    await openSettingsStep(admin, 'デザイン');
    const whiteOnPrimary = admin.getByRole('row', { name: /^メインの色の上の白い文字/ });
    assert.deepEqual(await cellTexts(whiteOnPrimary), ['メインの色の上の白い文字', '8.40:1', '4.5:1', '基準を満たす']);
    assert.equal(await admin.getByText('基準未満').count(), 0);
    await shot('1-look');

    // Too light a blue: refused with its measured ratio and a darker suggestion.
    const primary = admin.getByLabel('メインの色', { exact: true });
    await primary.fill('#7fa8d8');
    assert.equal(await submit(admin, '下書きを保存', '/admin/look'), 400);
    const refused = admin.getByRole('alert').filter({ hasText: 'コントラスト比が 2.4' });
    const message = (await refused.innerText()).trim();
    const m = message.match(/コントラスト比が (2\.4\d*):1 で、基準の 4\.5:1 に届きません。(#[0-9a-fA-F]{6}) など/);
    assert.ok(m, `the ratio and a suggestion are shown: ${message}`);
    assert.ok(Number(m[1]) < 4.5);
    assert.equal(await primary.inputValue(), '#7fa8d8', 'what was typed is kept');
    await shot('2-look-refused');

    // A darker blue and a new logo (a 64×64 PNG): saved to the draft, on to the review.
    const logo = png(64, 64);
    assert.ok(logo.length < 1024 * 1024);
    await primary.fill('#0a4a80');
    await admin.getByLabel('新しいロゴ画像').setInputFiles(file('新ロゴ.png', 'image/png', logo));
    assert.equal(await submit(admin, '下書きを保存', '/admin/look'), 303);
    await admin.getByRole('heading', { name: '変更内容の確認と公開', level: 1 }).waitFor();
    assert.equal(new URL(admin.url()).pathname, '/admin/settings/review');
    assert.equal((await admin.getByRole('status').innerText()).trim(), '下書きを保存しました。まだ会員には反映されていません。');
    assert.ok((await admin.locator('main').innerText()).includes('#0a4a80'), 'the review names the new colour');
    await shot('3-review-look');

    // 「サービスメニュー」 → 「サービスを追加」: an SVG with onload= is refused, a plain one taken.
    await openSettingsStep(admin, 'サービスメニュー');
    await shot('4-services');
    await admin.getByRole('link', { name: 'サービスを追加', exact: true }).click();
    await admin.getByRole('heading', { name: 'サービスを追加', level: 1 }).waitFor();
    await admin.getByLabel('名前', { exact: true }).fill('健康相談');
    await admin.getByLabel('リンク先', { exact: true }).fill('https://example.jp/soudan');
    await admin.getByLabel('アイコン画像').setInputFiles(file('soudan.svg', 'image/svg+xml', ACTIVE_ICON));
    await shot('5-service-new');
    assert.equal(await submit(admin, '下書きを保存', '/admin/services/new'), 400);
    const active = admin.getByRole('alert').filter({ hasText: 'スクリプトや外部への参照' });
    await active.waitFor();
    assert.equal(await admin.getByLabel('アイコン画像').getAttribute('aria-invalid'), 'true');
    assert.equal(await admin.getByLabel('名前', { exact: true }).inputValue(), '健康相談', 'the title is kept');
    assert.equal(await admin.getByLabel('リンク先', { exact: true }).inputValue(), 'https://example.jp/soudan');
    await shot('6-service-refused');
    await admin.getByLabel('アイコン画像').setInputFiles(file('soudan.svg', 'image/svg+xml', ICON));
    assert.equal(await submit(admin, '下書きを保存', '/admin/services/new'), 303);
    await admin.getByRole('heading', { name: 'サービスメニュー', level: 1 }).waitFor();
    const row = admin.getByRole('row').filter({ has: admin.getByRole('rowheader', { name: '健康相談', exact: true }) });
    assert.ok((await row.innerText()).includes('https://example.jp/soudan'));
    assert.ok((await loadedWidth(row.locator('img'))) > 0, 'the icon shows in the list');
    await shot('7-services-added');

    // Nothing reaches the member before 「公開」.
    await member.page.reload();
    await expectTopPage(member.page, member.member.name);
    assert.equal(await member.page.getByRole('link', { name: '健康相談' }).count(), 0, 'the draft leaked');
    assert.doesNotMatch(await member.page.locator('img.brand-logo').getAttribute('src'), /\/static\/uploads\//);

    // 「変更内容の確認と公開」 → 「公開」.
    await openSettingsStep(admin, '変更内容の確認と公開');
    await admin.getByRole('button', { name: '公開', exact: true }).waitFor();
    await shot('8-review');
    await admin.getByRole('button', { name: '公開', exact: true }).click();
    await admin.getByRole('heading', { name: '公開履歴', level: 1 }).waitFor();
    assert.ok((await admin.getByRole('status').innerText()).startsWith('公開しました。'));
    await shot('9-history');

    // The member reloads the top page: the new logo and the new service, both loaded.
    await member.page.reload();
    await expectTopPage(member.page, member.member.name);
    const brand = member.page.locator('img.brand-logo');
    assert.match(await brand.getAttribute('src'), /^\/static\/uploads\/[^/]+\.png$/);
    assert.equal(await loadedWidth(brand), 64, 'the logo loads');
    const tile = member.page.getByRole('link', { name: '健康相談' });
    assert.equal(await tile.getAttribute('href'), 'https://example.jp/soudan');
    const icon = tile.locator('img');
    assert.match(await icon.getAttribute('src'), /\/static\/uploads\/[^/]+\.svg/);
    assert.ok((await loadedWidth(icon)) > 0, 'the icon loads');
    await member.shot('1-top-published');
  });
});

test('「利用規約」: a new version is written, checked in both frames and published; the member accepts it at the next sign-in and the count and the evidence CSV follow', { timeout: 120_000 }, async () => {
  const member = await newMember(shared, KANEKA, 'phone', 'console-terms');
  const { page: admin, shot } = await signedInAdmin(KANEKA.slug, 'terms');
  const TITLE = 'KOSMO Web 利用規約（2026年12月改定）';
  const LINE = '4. 改定後の規約に同意いただくまで、本サービスはご利用いただけません。';
  const BODY = [
    '1. 本サービスは、カネカ健康保険組合の被保険者および被扶養者のためのものです。',
    '2. ユーザIDとパスワードは、ご本人が管理してください。',
    '3. 当組合は、取得した情報を健康保険事業の運営に必要な範囲でのみ利用します。',
    LINE,
  ].join('\n');
  /** The row of the versions table whose first cell starts with `version`. */
  const versionRow = (version) =>
    admin.getByRole('row').filter({ has: admin.getByRole('rowheader', { name: new RegExp(`^${version}`) }) });
  await closing([member, { page: admin, shot }], async () => {
    // The versions: the current one, accepted by the one member (who is not suspended).
    await openConsoleMenu(admin, '利用規約');
    const current = versionRow('2025-10');
    const cells = await cellTexts(current);
    assert.equal(cells[0], '2025-10 現在の版');
    assert.equal(cells[4], '1人（100.0%）');
    assert.match(await admin.locator('caption').innerText(), /利用停止中を除く会員 1 人/);
    await shot('1-terms');

    // 「新しい版を作成」: the four fields, 「下書きを保存」.
    await admin.getByRole('link', { name: '新しい版を作成', exact: true }).click();
    await admin.getByRole('heading', { name: '利用規約の新しい版', level: 1 }).waitFor();
    await admin.getByLabel('版の名前').fill('2026-12');
    await admin.getByLabel('制定日（会員に表示）').fill('2026-12-01');
    await admin.getByLabel('題名').fill(TITLE);
    await admin.getByLabel('本文').fill(BODY);
    await shot('2-terms-form');
    assert.equal(await submit(admin, '下書きを保存', '/admin/terms/draft'), 303);

    // The review: the member's terms page in a phone frame and a PC frame.
    await admin.getByRole('heading', { name: '利用規約の下書きの確認', level: 1 }).waitFor();
    assert.match(await admin.locator('.lead').first().innerText(), /版「2026-12」（制定日 2026\/12\/01）/);
    for (const screen of ['スマートフォン', 'パソコン']) {
      const frame = admin.frameLocator(`iframe[title="会員の同意画面（${screen}）"]`);
      await frame.getByRole('heading', { name: TITLE, level: 1 }).waitFor();
      await frame.getByText(LINE).waitFor();
      await frame.getByRole('button', { name: '同意する' }).waitFor();
    }
    const phone = admin.frameLocator('iframe[title="会員の同意画面（スマートフォン）"]');
    assert.ok((await phone.locator('.terms-body').innerText()).includes('2. ユーザIDとパスワードは'), 'line breaks kept');
    await shot('3-terms-review');

    // 「公開」: the new version is current, nobody has accepted it yet.
    await admin.getByRole('button', { name: '公開', exact: true }).click();
    await admin.getByRole('heading', { name: '利用規約', level: 1 }).waitFor();
    assert.ok((await admin.getByRole('status').innerText()).startsWith('新しい利用規約を公開しました'));
    const fresh = await cellTexts(versionRow('2026-12'));
    assert.equal(fresh[0], '2026-12 現在の版');
    assert.equal(fresh[1], TITLE);
    assert.equal(fresh[2], '2026/12/01');
    assert.equal(fresh[4], '0人（0.0%）');
    assert.equal((await cellTexts(versionRow('2025-10')))[0], '2025-10', 'one current version');
    await shot('4-terms-published');

    // The member signs out and in again: password, the app's code, then the new terms.
    const m = member.page;
    await logout(m, member.member.name);
    await submitLogin(m, shared.portal, KANEKA.slug, member.userId, member.password);
    await enterCode(m, member.totpKey);
    await m.getByRole('heading', { name: TITLE, level: 1 }).waitFor();
    await m.getByText(LINE).waitFor();
    assert.ok((await m.locator('main').innerText()).includes('2026/12/01'));
    await member.shot('1-new-terms');
    await m.getByRole('button', { name: '同意する', exact: true }).click();
    await expectTopPage(m, member.member.name);
    await member.shot('2-top-after-terms');

    // The count moves; the evidence CSV names the member, the version and an address.
    await admin.reload();
    assert.equal((await cellTexts(versionRow('2026-12')))[4], '1人（100.0%）');
    await shot('5-terms-accepted');
    const [download] = await Promise.all([
      admin.waitForEvent('download'),
      // The version is in a visually hidden span: Chromium names the link 「CSVでダウンロード （2026-12）」.
      admin.getByRole('link', { name: /^CSVでダウンロード\s*（2026-12）$/ }).click(),
    ]);
    const lines = csvLines(await readFile(await download.path()));
    assert.equal(lines[0], 'ユーザID,氏名,版,同意日時,IPアドレス');
    assert.equal(lines.length, 2, lines.join('\n'));
    const row = lines[1].split(',');
    assert.equal(row[0], member.userId);
    assert.equal(row[1], member.member.name);
    assert.equal(row[2], '2026-12');
    assert.match(row[3], /^\d{4}[-/]\d{2}[-/]\d{2}/);
    assert.match(row[4], /^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
  });
});

test('「一括登録」 reports each bad row of roster-problems.csv, imports 1000 members in Shift_JIS with their login CSV once; 「一括パスワードリセット」 resets two of them', { timeout: 150_000 }, async () => {
  const { page: admin, shot } = await signedInAdmin(DAIWA.slug, 'import');
  await closing([{ page: admin, shot }], async () => {
    // 「会員登録」: the member the problem file lists again (記号 9999, 番号 1).
    await openConsoleMenu(admin, '会員管理');
    await admin.getByRole('link', { name: '会員登録', exact: true }).click();
    await admin.getByLabel('氏名', { exact: true }).fill('既存 会員');
    await admin.getByLabel('氏名カナ（任意）').fill('キソン カイイン');
    await admin.getByLabel('生年月日').fill('1975-05-05');
    await admin.getByLabel('メールアドレス').fill('existing.member@example.jp');
    await admin.getByLabel('保険証の記号（任意）').fill('9999');
    await admin.getByLabel('保険証の番号（任意）').fill('1');
    await shot('1-member-new');
    await admin.getByRole('button', { name: '登録する', exact: true }).click();
    await admin.locator('#temporary-password').waitFor();
    await shot('2-credentials');

    // 「一括登録」 with roster-problems.csv: lines 8–11, nobody registered, no 「取り込む」.
    await openConsoleMenu(admin, '一括登録');
    await shot('3-import');
    const rosterFile = admin.getByLabel('名簿ファイル（CSV）');
    await rosterFile.setInputFiles(path.join(ROSTERS, 'roster-problems.csv'));
    assert.equal(await submit(admin, '確認する', '/admin/import'), 200);
    await admin.getByRole('heading', { name: '名簿ファイルの確認結果', level: 1 }).waitFor();
    const problems = [];
    for (const tr of await admin.locator('table tbody tr').all()) problems.push(await cellTexts(tr));
    const expected = [
      ['8', '番号', '同じ方がファイルの中に2回以上あります'],
      ['9', '生年月日', '生年月日を正しく入力してください'],
      ['10', 'メールアドレス', 'メールアドレス'],
      ['11', '番号', 'すでに会員として登録されています'],
    ];
    assert.equal(problems.length, expected.length, JSON.stringify(problems));
    for (const [[line, column, reason], [l, c, r]] of problems.map((p, i) => [p, expected[i]])) {
      assert.deepEqual([line, column], [l, c], JSON.stringify(problems));
      assert.ok(reason.includes(r), `line ${line}: ${reason}`);
    }
    await admin.getByRole('alert').filter({ hasText: '誰も登録されていません' }).waitFor();
    assert.equal(await admin.getByRole('button', { name: '取り込む' }).count(), 0);
    await shot('4-import-problems');

    // roster-1000-sjis-crlf.csv: Shift_JIS, 1000件, no problem; 「取り込む」.
    await admin.getByRole('link', { name: 'ファイルを選び直す', exact: true }).click();
    await rosterFile.setInputFiles(path.join(ROSTERS, 'roster-1000-sjis-crlf.csv'));
    assert.equal(await submit(admin, '確認する', '/admin/import'), 200);
    await admin.getByRole('heading', { name: '名簿ファイルの確認結果', level: 1 }).waitFor();
    const report = Object.fromEntries(
      await admin.locator('dl.data > div').evaluateAll((divs) =>
        divs.map((d) => [d.querySelector('dt').innerText.trim(), d.querySelector('dd').innerText.trim()])),
    );
    assert.match(report['文字コード'], /Shift_JIS/);
    assert.equal(report['データの行数'], '1000件');
    assert.equal(report['登録できる行'], '1000件');
    assert.equal(report['問題のある行'], '0件');
    assert.ok((await admin.locator('main').innerText()).includes('1000人を会員として登録し'));
    await shot('5-import-report');
    // Hashing 1000 temporary passwords takes a while: the click waits for the navigation.
    await admin.getByRole('button', { name: '取り込む', exact: true }).click({ timeout: 90_000 });
    await admin.getByRole('heading', { name: '一括登録が終わりました', level: 1 }).waitFor({ timeout: 90_000 });
    assert.ok((await admin.getByRole('status').innerText()).includes('1000人を会員として登録しました'));
    const letters = admin.getByRole('link', { name: '通知書を印刷する', exact: true });
    assert.match(await letters.getAttribute('href'), /^\/admin\/import\/[0-9a-f]{32}\/letters$/);
    const credentials = admin.getByRole('link', { name: 'ログイン情報CSVをダウンロード', exact: true });
    await shot('6-import-done');

    // The login CSV, once.
    const [download] = await Promise.all([admin.waitForEvent('download'), credentials.click()]);
    const csv = await readFile(await download.path());
    assert.deepEqual([...csv.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'a BOM for Excel');
    const lines = csvLines(csv);
    assert.equal(lines[0], '氏名,氏名カナ,生年月日,メールアドレス,記号,番号,ユーザID,仮パスワード,ログインページ');
    assert.equal(lines.length, 1001);
    const doneUrl = admin.url();
    await admin.reload();
    await admin.getByText('ログイン情報のCSVはダウンロード済みです。').waitFor();
    assert.equal(await credentials.count(), 0, 'no second download offered');
    await shot('7-import-done-taken');
    await admin.goto(new URL(await download.url()).href);
    await admin.getByRole('heading', { name: 'ダウンロード済みです', level: 1 }).waitFor();
    await admin.getByText('安全のため、ダウンロードは1回だけです。').waitFor();
    await shot('8-credentials-again');
    assert.ok(doneUrl.endsWith('/done'));

    // 会員管理 → 「一括パスワードリセット」 for two user IDs of the CSV, the default rule.
    const picked = [lines[1], lines[2]].map((l) => l.split(','));
    const userIds = picked.map((r) => r[6]);
    await openConsoleMenu(admin, '会員管理');
    await admin.getByRole('link', { name: '一括パスワードリセット', exact: true }).click();
    await admin.getByRole('heading', { name: '一括パスワードリセット', level: 1 }).waitFor();
    assert.equal(await admin.getByLabel('パスワードのルール').inputValue(), '{記号}{番号}{生年月日:YYYYMMDD}');
    await admin.getByRole('radio', { name: 'ユーザIDを指定' }).check();
    await admin.getByLabel('ユーザIDの一覧（「ユーザIDを指定」のとき）').fill(userIds.join('\n'));
    await shot('9-bulk-reset');
    assert.equal(await submit(admin, '対象と結果を確認する', '/admin/bulk-reset/preview'), 200);
    await admin.getByRole('heading', { name: '一括パスワードリセットの確認', level: 1 }).waitFor();
    assert.match(await admin.locator('.lead').first().innerText(), /選んだ2人のうち2人/);
    const sample = [];
    for (const tr of await admin.locator('table tbody tr').all()) sample.push(await cellTexts(tr));
    assert.deepEqual(sample.map((r) => r[0]).sort(), [...userIds].sort());
    for (const [userId, , masked] of sample) {
      const [, , birth, , symbol, number] = picked.find((r) => r[6] === userId);
      const password = `${symbol}${number}${birth.replaceAll('-', '')}`;
      assert.equal(masked, '●'.repeat(password.length), `${userId}: ${masked}`);
    }
    assert.doesNotMatch(await admin.locator('main').innerText(), new RegExp(picked[0][4] + picked[0][5] + picked[0][2].replaceAll('-', '')));
    await shot('10-bulk-reset-confirm');
    assert.equal(await submit(admin, '2人のパスワードをリセットする', '/admin/bulk-reset'), 200);
    await admin.getByRole('heading', { name: '一括パスワードリセットが終わりました', level: 1 }).waitFor();
    assert.ok((await admin.getByRole('status').innerText()).includes('2人のパスワードをリセットしました'));
    await shot('11-bulk-reset-done');
  });
});
