// Journeys 11 and 12 of SPEC §3 (manual 3-6, 3-7) from 「ログイン方法変更」 → 「二要素認証」:
//   11 add a device: 「設定」 → the same set-up pages as at first login → listed; at the next
//      login the member picks the kind (links under 「別の方法で認証する場合：」) and, with
//      two authenticator apps, the device by its name.
//   12 remove a device: 「削除」 → 「スマートデバイス削除確認」 → 「戻る」 keeps it, 「削除する」
//      removes it; the last second factor of a society that requires one cannot be removed.
// Both tenants, phone and desktop; each change is told to the member by mail.
// And the step-up (「続行する際には再度認証してください。」) with a second factor: password,
// then the authenticator app's code or the mailed code, or nothing more when the session was
// opened with a passkey. That test runs on a portal of its own whose societies accept an
// authentication for 1 minute only, and waits that minute out while the others run.
// Screenshots: target/screenshots/factors-<journey>-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  ADDED,
  kindsOf,
  LAST_FACTOR,
  REMOVED,
  STEP_UP,
  clickAdd,
  clickDelete,
  deviceNames,
  deviceRow,
  kindSection,
  openLoginMethods,
  otherFactorLinks,
  stepUpWithPassword,
  switchFactor,
} from './lib/factors.mjs';
import { INVALID_CREDENTIALS, expectTopPage, logout, setTenantValues, submitLogin, worded } from './lib/journeys.mjs';
import { startPortal } from './lib/server.mjs';
import { VIEWPORTS, closing, newMember, sharedPortal, tenantsWith } from './lib/suite.mjs';
import { freshCode, registerApp, totpCode } from './lib/totp.mjs';
import { passkeyStep, registerPasskey } from './lib/webauthn.mjs';

const TENANTS = tenantsWith({
  daiwakenpo: { kinds: ['passkey', 'totp'] },
  kanekakenpo: { kinds: ['passkey', 'totp', 'email'] },
});
const ADDED_MAIL = '二要素認証の追加のお知らせ';
const REMOVED_MAIL = '二要素認証の削除のお知らせ';
const OTP_WRONG = 'ワンタイムパスワードが正しくありません';

const shared = sharedPortal();

/**
 * A member of `tenant` on `portalUnderTest` who finished the first login with `method`
 * ('totp', 'passkey' or 'email'), on the top page of a page of their own (with a virtual
 * authenticator). Resolves to newMember's member; the inbox has the mails from the first
 * login on.
 */
function factorsMember(portalUnderTest, tenant, viewportName, label, method) {
  const where = { portal: portalUnderTest, browser: shared.browser };
  return newMember(where, tenant, viewportName, `factors-${label}`, {
    authenticator: true,
    firstLogin: ({ inbox }) => {
      if (method === 'passkey') {
        return { method: 'passkey', setUp: (p, { shot: s }) => registerPasskey(p, { shot: s }) };
      }
      if (method === 'email') {
        return {
          method: 'email_otp',
          setUp: async (p) => {
            await p.getByRole('heading', { name: 'メール認証' }).waitFor();
            await enterMailedCode(p, await inbox.code());
          },
        };
      }
      return {};
    },
  });
}

async function enterMailedCode(page, code) {
  await page.getByLabel('ワンタイムパスワード（6桁）').fill(code);
  await page.getByRole('button', { name: '認証する' }).click();
}

/** A fresh code of the app `key` on the one-time password step → 「トップページへ」. */
async function enterAppCode(page, key) {
  await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(await freshCode(key));
  await page.getByRole('button', { name: 'トップページへ' }).click();
}

/** Back on 「ログイン方法変更」 with `notice` (ADDED or REMOVED). */
async function expectNotice(page, notice) {
  await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
  await page.getByRole('status').filter({ hasText: notice }).waitFor();
}

/** The notice mail of an added or removed factor: its kind and name are in it. */
async function expectFactorMail(inbox, subject, kind, name) {
  const mail = await inbox.next({ subject });
  for (const line of [`種類：${kind}`, `名前：${name}`]) {
    assert.ok(mail.text.includes(line), `「${line}」 in 「${subject}」:\n${mail.text}`);
  }
  return mail;
}

/**
 * 「ワンタイムパスワード設定」 for a second app: first under a name the member already uses
 * (refused: 「このデバイス名はすでに登録されています。…」), then under `deviceName`.
 */
async function registerSecondApp(page, takenName, deviceName, shot) {
  await page.getByRole('heading', { name: 'ワンタイムパスワード設定' }).waitFor();
  await page.getByText('スキャンできませんか？').click();
  const key = (await page.locator('#totp-key').innerText()).trim();
  await page.getByLabel('デバイス名').fill(takenName);
  await page.getByLabel('ワンタイムパスワード（6桁）').fill(await totpCode(key));
  await page.getByRole('button', { name: '実行' }).click();
  await page
    .getByRole('alert')
    .filter({ hasText: 'このデバイス名はすでに登録されています。別の名前を入力してください。' })
    .waitFor();
  await shot('app-name-taken');
  const registered = await registerApp(page, { deviceName, shot });
  assert.equal(registered.key, key, 'the same key after the refused name');
  return key;
}

// --- journey 11 ---------------------------------------------------------------------------

function journey11(tenant, viewportName) {
  const { slug } = tenant;
  const K = kindsOf(slug);
  test(`journey 11: add a passkey${slug === 'kanekakenpo' ? ' and a second app' : ''} on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
    const m = await factorsMember(shared.portal, tenant, viewportName, 'j11', 'totp');
    await closing([m], async () => {
      const { page, member, inbox, shot } = m;
      const keyName = viewportName === 'phone' ? 'iPhone（顔認証）' : 'ノートパソコン';
      await expectFactorMail(inbox, ADDED_MAIL, K.totp, 'iPhone');

      // ①② 「ログイン方法変更」: a section per kind the society allows, the app listed.
      await openLoginMethods(page);
      await page.getByRole('heading', { name: '二要素認証', level: 2 }).waitFor();
      for (const kind of tenant.kinds) await kindSection(page, K[kind]).waitFor();
      assert.equal(await page.getByRole('region', { name: K.email, exact: true }).count(), tenant.kinds.includes('email') ? 1 : 0);
      assert.deepEqual(await deviceNames(page, K.totp), ['iPhone']);
      assert.deepEqual(await deviceNames(page, K.passkey), []);
      await kindSection(page, K.passkey).getByText('登録されていません。').waitFor();
      await shot('1-methods');

      // ③ 「設定」 under 「生体認証（パスキー）」 → 「セキュリティキー登録」 → 「登録」 → name → 「ＯＫ」
      // (just signed in: no step-up).
      await clickAdd(page, K.passkey);
      await registerPasskey(page, { name: keyName, shot: (s) => shot(`2-${s}`) });
      await expectNotice(page, ADDED);
      assert.deepEqual(await deviceNames(page, K.passkey), [keyName]);
      await deviceRow(page, K.passkey, keyName).getByText(/作成日：\d{4}\/\d{2}\/\d{2}/).waitFor();
      await shot('3-passkey-added');
      await expectFactorMail(inbox, ADDED_MAIL, K.passkey, keyName);

      let secondKey;
      if (slug === 'kanekakenpo') {
        // A second authenticator app under a name of its own.
        await clickAdd(page, K.totp);
        secondKey = await registerSecondApp(page, 'iPhone', 'iPad', (s) => shot(`4-${s}`));
        await expectNotice(page, ADDED);
        assert.deepEqual((await deviceNames(page, K.totp)).sort(), ['iPad', 'iPhone']);
        await shot('5-app-added');
        await expectFactorMail(inbox, ADDED_MAIL, K.totp, 'iPad');
      }

      // Next login: the kind chosen at first login (the app) comes first, the passkey is a
      // link away.
      await logout(page, member.name);
      await submitLogin(page, shared.portal, slug, m.userId, m.password);
      await page.getByLabel('ワンタイムパスワード', { exact: true }).waitFor();
      assert.deepEqual(await otherFactorLinks(page), [K.passkey]);
      await shot('6-login-choice');
      await switchFactor(page, K.passkey);
      // ... and back: the passkey page links to the app.
      await page.getByRole('heading', { name: '生体認証', exact: true }).waitFor();
      assert.deepEqual(await otherFactorLinks(page), [K.totp]);
      await passkeyStep(page, { shot: (s) => shot(`7-${s}`) });
      await expectTopPage(page, member.name);
      const [credential] = await m.authenticator.credentials();
      assert.equal(credential.rpId, `${slug}.localhost`);

      if (secondKey) {
        // With two apps the member names the device first: the iPad's code is wrong for the
        // iPhone and right for the iPad.
        await logout(page, member.name);
        await submitLogin(page, shared.portal, slug, m.userId, m.password);
        const devices = page.getByRole('group', { name: 'デバイス' });
        await devices.getByRole('radio', { name: 'iPhone', exact: true }).waitFor();
        assert.equal(await devices.getByRole('radio').count(), 2);
        const code = await freshCode(secondKey);
        await page.getByRole('radio', { name: 'iPhone', exact: true }).check();
        await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(code);
        await page.getByRole('button', { name: 'トップページへ' }).click();
        await page.getByRole('alert').filter({ hasText: OTP_WRONG }).waitFor();
        await shot('8-wrong-device');
        await page.getByRole('radio', { name: 'iPad', exact: true }).check();
        await page.getByLabel('ワンタイムパスワード', { exact: true }).fill(code);
        await page.getByRole('button', { name: 'トップページへ' }).click();
        await expectTopPage(page, member.name);
        await shot('9-top');
      }
    });
  });
}

// --- journey 12 ---------------------------------------------------------------------------

function journey12(tenant, viewportName) {
  const { slug } = tenant;
  const K = kindsOf(slug);
  test(`journey 12: remove second factors on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
    // A member who chose the passkey at first login and then added an app.
    const m = await factorsMember(shared.portal, tenant, viewportName, 'j12', 'passkey');
    await closing([m], async () => {
      const { page, member, inbox, shot } = m;
      await expectFactorMail(inbox, ADDED_MAIL, K.passkey, 'パスキー');
      await openLoginMethods(page);
      await clickAdd(page, K.totp);
      const { key } = await registerApp(page, { deviceName: 'Android', shot: (s) => shot(`1-${s}`) });
      await expectNotice(page, ADDED);
      await expectFactorMail(inbox, ADDED_MAIL, K.totp, 'Android');
      let emailFactor = false;
      if (slug === 'kanekakenpo') {
        // The mailed code as a third factor, proven by a code.
        await clickAdd(page, K.email);
        await page.getByRole('heading', { name: 'メール認証' }).waitFor();
        await enterMailedCode(page, await inbox.code());
        await expectNotice(page, ADDED);
        assert.deepEqual(await deviceNames(page, K.email), [member.email]);
        assert.equal(await kindSection(page, K.email).getByRole('link', { name: '設定' }).count(), 0, 'mail is one factor');
        await expectFactorMail(inbox, ADDED_MAIL, K.email, 'メール認証');
        emailFactor = true;
      }
      await shot('2-methods');

      // 「削除」 on the passkey → 「スマートデバイス削除確認」 names it → 「戻る」: still there.
      await clickDelete(page, K.passkey, 'パスキー');
      await page.getByRole('heading', { name: 'スマートデバイス削除確認' }).waitFor();
      await page.getByText('パスキー', { exact: true }).waitFor();
      await page.getByText(K.passkey, { exact: true }).waitFor();
      await shot('3-confirm');
      await page.getByRole('link', { name: '戻る' }).click();
      await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
      assert.deepEqual(await deviceNames(page, K.passkey), ['パスキー']);
      assert.deepEqual(await inbox.take(REMOVED_MAIL), [], '「戻る」 removed nothing');

      // 「削除」 → 「削除する」: gone, and the member is told by mail.
      await clickDelete(page, K.passkey, 'パスキー');
      await page.getByRole('button', { name: '削除する' }).click();
      await expectNotice(page, REMOVED);
      assert.deepEqual(await deviceNames(page, K.passkey), []);
      await kindSection(page, K.passkey).getByText('登録されていません。').waitFor();
      await shot('4-removed');
      await expectFactorMail(inbox, REMOVED_MAIL, K.passkey, 'パスキー');

      if (emailFactor) {
        await clickDelete(page, K.email, member.email);
        await page.getByRole('button', { name: '削除する' }).click();
        await expectNotice(page, REMOVED);
        assert.deepEqual(await deviceNames(page, K.email), []);
        await expectFactorMail(inbox, REMOVED_MAIL, K.email, 'メール認証');
      }

      // The app is the last factor now: its 「削除」 is refused and it stays.
      await clickDelete(page, K.totp, 'Android');
      await page.getByRole('heading', { name: 'スマートデバイス削除確認' }).waitFor();
      await page.getByRole('alert').filter({ hasText: worded(slug, LAST_FACTOR) }).waitFor();
      assert.equal(await page.getByRole('button', { name: '削除する' }).count(), 0);
      await shot('5-last-refused');
      await page.getByRole('link', { name: '戻る' }).click();
      assert.deepEqual(await deviceNames(page, K.totp), ['Android']);

      // The next login asks for the app only: no passkey, no link to another kind.
      await logout(page, member.name);
      await submitLogin(page, shared.portal, slug, m.userId, m.password);
      await page.getByLabel('ワンタイムパスワード', { exact: true }).waitFor();
      assert.deepEqual(await otherFactorLinks(page), []);
      await enterAppCode(page, key);
      await expectTopPage(page, member.name);
      assert.deepEqual(await inbox.take(REMOVED_MAIL), [], 'the refused removal mailed nothing');
    });
  });
}

// --- step-up ------------------------------------------------------------------------------

/** How long the step-up portal's societies accept an authentication (the smallest allowed). */
const STEP_UP_MINUTES = 1;

function stepUpTest() {
  test('step-up with a second factor before adding or removing one', { timeout: 180_000 }, async () => {
    const own = await startPortal({ env: { PORTAL_TENANT_REFRESH_MS: '100' } });
    try {
      for (const { slug } of TENANTS) {
        await setTenantValues(own, slug, { 'session.step_up_max_age_minutes': STEP_UP_MINUTES }, { settleMs: 0 });
      }
      await sleep(1_000);
      const [daiwa, kaneka] = TENANTS;
      // A: an app; B: the mailed code; C: a passkey and an app, signed in with the passkey.
      const prepare = async () => {
        const settled = await Promise.allSettled([
          factorsMember(own, daiwa, 'phone', 'stepup-app', 'totp'),
          factorsMember(own, kaneka, 'desktop', 'stepup-mail', 'email'),
          (async () => {
            const m = await factorsMember(own, kaneka, 'phone', 'stepup-passkey', 'passkey');
            await openLoginMethods(m.page);
            await clickAdd(m.page, kindsOf(m.slug).totp);
            m.totpKey = (await registerApp(m.page, { deviceName: 'Android' })).key;
            await expectNotice(m.page, ADDED);
            await logout(m.page, m.member.name);
            await submitLogin(m.page, own, m.slug, m.userId, m.password);
            await passkeyStep(m.page);
            await expectTopPage(m.page, m.member.name);
            return m;
          })(),
        ]);
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) {
          for (const r of settled) if (r.status === 'fulfilled') await r.value.page.context().close();
          throw failed.reason;
        }
        return settled.map((r) => r.value);
      };
      const members = await prepare();
      const [a, b, c] = members;
      await closing(members, async () => {
        // Every member's last authentication is now older than the society allows.
        await sleep(STEP_UP_MINUTES * 60_000 + 1_500);

        // A (app): 「設定」 passkey → step-up: password (a wrong one first), then the app's code.
        await openLoginMethods(a.page);
        await clickAdd(a.page, kindsOf(a.slug).passkey);
        await stepUpWithPassword(a.page, `${a.password}x`, { shot: (s) => a.shot(`1-${s}`) });
        await a.page.getByRole('alert').filter({ hasText: worded(a.slug, INVALID_CREDENTIALS) }).waitFor();
        await stepUpWithPassword(a.page, a.password);
        await a.page.getByLabel('ワンタイムパスワード', { exact: true }).waitFor();
        await a.shot('2-step-up-code');
        await enterAppCode(a.page, a.totpKey);
        await registerPasskey(a.page, { name: 'スマホ' });
        await expectNotice(a.page, ADDED);
        assert.deepEqual(await deviceNames(a.page, kindsOf(a.slug).passkey), ['スマホ']);
        await a.shot('3-added');

        // B (mailed code): 「設定」 app → step-up: password, then the code of a new mail.
        await openLoginMethods(b.page);
        await clickAdd(b.page, kindsOf(b.slug).totp);
        await stepUpWithPassword(b.page, b.password, { shot: (s) => b.shot(`1-${s}`) });
        await b.page.getByRole('heading', { name: 'メール認証' }).waitFor();
        await enterMailedCode(b.page, await b.inbox.code());
        await registerApp(b.page, { deviceName: 'Pixel' });
        await expectNotice(b.page, ADDED);
        assert.deepEqual(await deviceNames(b.page, kindsOf(b.slug).totp), ['Pixel']);
        await b.shot('2-added');

        // C (signed in with a passkey): 「削除」 app → step-up: the password is enough.
        await openLoginMethods(c.page);
        await clickDelete(c.page, kindsOf(c.slug).totp, 'Android');
        await stepUpWithPassword(c.page, c.password, { shot: (s) => c.shot(`1-${s}`) });
        await c.page.getByRole('heading', { name: 'スマートデバイス削除確認' }).waitFor();
        await c.page.getByRole('button', { name: '削除する' }).click();
        await expectNotice(c.page, REMOVED);
        assert.deepEqual(await deviceNames(c.page, kindsOf(c.slug).totp), []);
        await c.shot('2-removed');
        assert.equal(await c.page.getByText(STEP_UP).count(), 0);
      });
    } finally {
      await own.stop();
    }
  });
}

// The step-up test waits a minute on its own portal: it runs beside the journeys.
describe('second factors', { concurrency: 2 }, () => {
  stepUpTest();
  for (const viewportName of Object.keys(VIEWPORTS)) {
    for (const tenant of TENANTS) {
      journey11(tenant, viewportName);
      journey12(tenant, viewportName);
    }
  }
});
