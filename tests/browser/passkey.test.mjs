// Journey 3 of SPEC §3 (manual 2-3): first login choosing 「生体認証（パスキー）」, then
// 「セキュリティキー登録」 → 「登録」 → the browser's WebAuthn ceremony (a CDP virtual
// authenticator: a platform authenticator with user verification) → the name (「パスキー」
// kept or changed) 「ＯＫ」 → top page; logout; daily login: password → 「生体認証」 →
// 「次へ」 → top page. Both tenants, phone and desktop. On the PC the member then tries
// 「設定」 with the same authenticator (refused by the browser: the key is excluded) and
// registers a second device, whose offered name 「パスキー」 is already taken.
// Then what a passkey must not do: log in on another society's host (the same key
// material under that host's relying party id), or log in from a clone whose signature
// counter went backwards. Screenshots: target/screenshots/passkey-<case>-….png

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ADDED, clickAdd, deviceNames, kindSection, kindsOf, openLoginMethods } from './lib/factors.mjs';
import { expectTopPage, logout, submitLogin } from './lib/journeys.mjs';
import { TENANTS, VIEWPORTS, closing, newMember, sharedPortal } from './lib/suite.mjs';
import { addAuthenticator, passkeyError, passkeyNameButton, passkeyStep, registerPasskey } from './lib/webauthn.mjs';

/** What the member reads when the server does not accept the passkey. */
const PASSKEY_FAILED = '生体認証を確認できませんでした。登録済みの端末でもう一度お試しください。';
const NAME_TAKEN = 'この名前はすでに登録されています。別の名前を入力してください。';

const shared = sharedPortal();

/**
 * A member of `tenant` who finished the first login with a passkey (named `keyName`, or
 * the offered 「パスキー」), on a page of their own with a virtual authenticator. Resolves
 * to newMember's member with `keyName`, the name the passkey got.
 */
async function passkeyMember(tenant, viewportName, label, { keyName } = {}) {
  const m = await newMember(shared, tenant, viewportName, `passkey-${label}`, {
    authenticator: true,
    firstLogin: () => ({
      method: 'passkey',
      setUp: (p, { shot: s }) => registerPasskey(p, { name: keyName, shot: s }),
    }),
  });
  return { ...m, keyName: m.setUp };
}

/** The password step of a daily login, ending on 「生体認証」 with 「次へ」. */
async function toPasskeyStep(m, slug) {
  await submitLogin(m.page, shared.portal, slug, m.userId, m.password);
  await m.page.getByRole('heading', { name: '生体認証', exact: true }).waitFor();
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) {
    const { slug } = tenant;
    test(`journey 3: passkey set-up and login on ${slug} (${viewportName})`, { timeout: 60_000 }, async () => {
      // On the phone the member names the key; on the PC they keep 「パスキー」.
      const keyName = viewportName === 'phone' ? 'iPhone（顔認証）' : undefined;
      const m = await passkeyMember(tenant, viewportName, 'j3', { keyName });
      await closing([m], async () => {
        const { page, authenticator, member, shot } = m;
        assert.equal(m.keyName, keyName ?? 'パスキー');

        // The authenticator holds one discoverable credential for this society's host.
        const registered = await authenticator.credentials();
        assert.equal(registered.length, 1, 'one credential after 「登録」');
        assert.equal(registered[0].rpId, `${slug}.localhost`);

        // 「ログイン方法変更」 lists it under 「生体認証（パスキー）」 (daiwakenpo: 「生体認証」) with its creation date.
        await openLoginMethods(page);
        const section = kindSection(page, kindsOf(slug).passkey);
        await section.getByText(m.keyName, { exact: true }).waitFor();
        await section.getByText(/作成日：\d{4}\/\d{2}\/\d{2}/).waitFor();
        await shot('1-methods');

        // Daily login: password → 「生体認証」 → 「次へ」 → top page.
        await logout(page, member.name);
        await toPasskeyStep(m, slug);
        // A member with only a passkey is not offered other kinds.
        assert.equal(await page.getByText('別の方法で認証する場合：').count(), 0);
        await passkeyStep(page, { shot: (s) => shot(`2-${s}`) });
        await expectTopPage(page, member.name);
        await shot('3-top');

        // The ceremony used the same credential, and its signature counter moved on.
        const used = await authenticator.credentials();
        assert.equal(used.length, 1);
        assert.equal(used[0].credentialId, registered[0].credentialId);
        assert.ok(
          used[0].signCount > registered[0].signCount,
          `signCount ${registered[0].signCount} → ${used[0].signCount}`,
        );

        // The list now shows when it was last used.
        await openLoginMethods(page);
        await kindSection(page, kindsOf(slug).passkey).getByText(/最終利用日：\d{4}\/\d{2}\/\d{2}/).waitFor();

        if (viewportName === 'desktop') {
          // 「設定」 from the same authenticator: the server lists its key as excluded, the
          // browser refuses, and the member is told.
          await clickAdd(page, kindsOf(slug).passkey);
          await page.getByRole('heading', { name: 'セキュリティキー登録' }).waitFor();
          await page.getByRole('button', { name: '登録', exact: true }).click();
          await passkeyError(page).getByText('このパスキーはすでに登録されています。').waitFor();
          await shot('4-same-authenticator');
          assert.equal((await authenticator.credentials()).length, 1);

          // Another device (a second authenticator): the offered 「パスキー」 is taken.
          await authenticator.remove();
          const second = await addAuthenticator(page);
          await page.getByRole('button', { name: '登録', exact: true }).click();
          await page.getByLabel('パスキーの名前').waitFor();
          await page.getByRole('button', { name: passkeyNameButton(page), exact: true }).click();
          await page.getByRole('alert').filter({ hasText: NAME_TAKEN }).waitFor();
          await shot('5-name-taken');
          await page.getByLabel('パスキーの名前').fill('予備のセキュリティキー');
          await page.getByRole('button', { name: passkeyNameButton(page), exact: true }).click();
          await page.getByRole('status').filter({ hasText: ADDED }).waitFor();
          assert.deepEqual(await deviceNames(page, kindsOf(slug).passkey), ['パスキー', '予備のセキュリティキー']);
          assert.equal((await second.credentials()).length, 1);
        }
      });
    });
  }
}

test('a passkey registered on daiwakenpo does not log in a kanekakenpo member', { timeout: 60_000 }, async () => {
  const [daiwa, kaneka] = await Promise.all([
    passkeyMember(TENANTS[0], 'desktop', 'cross'),
    passkeyMember(TENANTS[1], 'desktop', 'cross'),
  ]);
  await closing([daiwa, kaneka], async () => {
    const [foreign] = await daiwa.authenticator.credentials();
    const [own] = await kaneka.authenticator.credentials();
    assert.equal(foreign.rpId, 'daiwakenpo.localhost');
    assert.equal(own.rpId, 'kanekakenpo.localhost');

    // The kanekakenpo member's browser holds only the daiwakenpo key material, now under
    // kanekakenpo's relying party id, and offers it whatever the server asks for (the
    // options' allowCredentials are replaced by that key's id on the way).
    const { page } = kaneka;
    await logout(page, kaneka.member.name);
    await kaneka.authenticator.removeCredential(own.credentialId);
    await kaneka.authenticator.addCredential({ ...foreign, rpId: 'kanekakenpo.localhost' });
    await toPasskeyStep(kaneka, 'kanekakenpo');
    await page.evaluate((credentialId) => {
      const get = navigator.credentials.get.bind(navigator.credentials);
      const id = Uint8Array.from(atob(credentialId), (c) => c.charCodeAt(0));
      window.offeredKey = { type: 'public-key', id };
      navigator.credentials.get = (options) => {
        if (window.offeredKey) options.publicKey.allowCredentials = [window.offeredKey];
        return get(options);
      };
    }, foreign.credentialId);
    await page.getByRole('button', { name: '次へ' }).click();
    const error = passkeyError(page);
    await error.getByText(PASSKEY_FAILED).waitFor();
    await kaneka.shot('1-foreign-refused');
    const [offered] = await kaneka.authenticator.credentials();
    assert.ok(offered.signCount > foreign.signCount, 'the browser did sign with the foreign key');
    assert.equal(await page.getByRole('link', { name: kaneka.member.name }).count(), 0, 'not signed in');
    await page.getByRole('heading', { name: '生体認証', exact: true }).waitFor();

    // The member's own passkey still works from the same page.
    await page.evaluate(() => {
      window.offeredKey = null;
    });
    await kaneka.authenticator.removeCredential(foreign.credentialId);
    await kaneka.authenticator.addCredential(own);
    await page.getByRole('button', { name: '次へ' }).click();
    await expectTopPage(page, kaneka.member.name);
  });
});

test('a passkey whose signature counter went backwards is refused', { timeout: 60_000 }, async () => {
  const m = await passkeyMember(TENANTS[0], 'phone', 'counter');
  await closing([m], async () => {
    const { page, authenticator, member } = m;
    // Two logins move the counter on (each by at least one).
    for (let i = 0; i < 2; i += 1) {
      await logout(page, member.name);
      await toPasskeyStep(m, 'daiwakenpo');
      await passkeyStep(page);
      await expectTopPage(page, member.name);
    }
    const [current] = await authenticator.credentials();
    assert.ok(current.signCount >= 2, `signCount ${current.signCount}`);

    // A clone of the key made before those logins: same key, smaller (non-zero) counter.
    await authenticator.removeCredential(current.credentialId);
    await authenticator.addCredential({ ...current, signCount: 0 });
    await logout(page, member.name);
    await toPasskeyStep(m, 'daiwakenpo');
    await page.getByRole('button', { name: '次へ' }).click();
    await passkeyError(page).getByText(PASSKEY_FAILED).waitFor();
    const [clone] = await authenticator.credentials();
    assert.ok(clone.signCount > 0 && clone.signCount < current.signCount, `clone signed with ${clone.signCount}`);
    await m.shot('1-clone-refused');
    assert.equal(await page.getByRole('link', { name: member.name }).count(), 0, 'not signed in');

    // The genuine key (its counter ahead of the stored one) still logs in from that page.
    await authenticator.removeCredential(current.credentialId);
    await authenticator.addCredential(current);
    await page.getByRole('button', { name: '次へ' }).click();
    await expectTopPage(page, member.name);
  });
});
