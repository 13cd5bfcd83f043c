// Passkeys in browser tests: a CDP virtual authenticator stands in for the phone's or
// the PC's platform authenticator (Face ID, Windows Hello …), and the passkey pages are
// walked the way manual 2-3 tells a member to: 「セキュリティキー登録」 → 「登録」 → name
// 「ＯＫ」; later 「生体認証」 → 「次へ」.
//
//   const authenticator = await addAuthenticator(page);
//   await registerPasskey(page, { name: '仕事用のパソコン' });
//   ...
//   await passkeyStep(page);            // 「生体認証」 → 「次へ」
//   const [credential] = await authenticator.credentials();

/** A platform authenticator with user verification that answers without a prompt. */
const AUTHENTICATOR_OPTIONS = {
  protocol: 'ctap2',
  ctap2Version: 'ctap2_1',
  transport: 'internal',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};

/**
 * Adds a virtual authenticator to `page`'s tab (it survives navigations of that tab).
 * Resolves to {id, credentials(), addCredential(c), removeCredential(id), remove()}.
 */
export async function addAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: AUTHENTICATOR_OPTIONS });
  return {
    id: authenticatorId,
    /** The credentials the authenticator holds: {credentialId, rpId, signCount, privateKey, userHandle, …}. */
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
    /** Puts a credential (as getCredentials returns it, possibly edited) into the authenticator. */
    async addCredential(credential) {
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    },
    async removeCredential(credentialId) {
      await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId });
    },
    async remove() {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}

/** The element where the passkey pages show what went wrong with a ceremony. */
export function passkeyError(page) {
  return page.locator('#passkey-error[role="alert"]');
}

/**
 * The button under a new passkey's name, in the society's own guide's words: daiwakenpo
 * §2-3 ⑥ 「ＯＫ」, kanekakenpo 【2-1】【7】 「次へ」. Told from the page's host.
 */
export function passkeyNameButton(page) {
  const host = new URL(page.url()).hostname;
  return host.startsWith('kanekakenpo') ? '次へ' : 'ＯＫ';
}

/**
 * On 「セキュリティキー登録」: 「登録」 runs the ceremony; the name page offers 「パスキー」,
 * which is kept or replaced by `name`; 「ＯＫ」 (「次へ」 on kanekakenpo). Resolves to the
 * name given.
 */
export async function registerPasskey(page, { name, shot = async () => {} } = {}) {
  await page.getByRole('heading', { name: 'セキュリティキー登録' }).waitFor();
  await shot('passkey-setup');
  await page.getByRole('button', { name: '登録', exact: true }).click();
  const field = page.getByLabel('パスキーの名前');
  await field.waitFor();
  const offered = await field.inputValue();
  if (offered !== 'パスキー') throw new Error(`the name page offers ${JSON.stringify(offered)}, not 「パスキー」`);
  if (name !== undefined) await field.fill(name);
  await shot('passkey-name');
  await page.getByRole('button', { name: passkeyNameButton(page), exact: true }).click();
  return name ?? offered;
}

/** The login's passkey step: 「生体認証」 → 「次へ」 (the ceremony answers by itself). */
export async function passkeyStep(page, { shot = async () => {} } = {}) {
  await page.getByRole('heading', { name: '生体認証', exact: true }).waitFor();
  await shot('passkey-login');
  await page.getByRole('button', { name: '次へ' }).click();
}
