// 「ログイン方法変更」 → 「二要素認証」 as a member walks it (manual 3-6, 3-7): a section per
// kind (region named by its heading 「認証アプリ」, 「生体認証（パスキー）」, 「メール認証」)
// with 「設定」, and each device with its name and 「削除」; the step-up page
// 「続行する際には再度認証してください。」; the second-factor step of a login with the links
// under 「別の方法で認証する場合：」.

import { openMenuItem, slugOf } from './journeys.mjs';

/** The kinds' names in the default wording (kanekakenpo's); kindsOf gives a society's own. */
export const KIND = {
  totp: '認証アプリ',
  passkey: '生体認証（パスキー）',
  email: 'メール認証',
};

/** Where a society names a kind otherwise: daiwakenpo §3-6 ③ 「二要素認証」の「生体認証」. */
const SOCIETY_KINDS = {
  daiwakenpo: { passkey: '生体認証' },
};

/** The names of the kinds on the screens and in the mails of `slug` (or a page's society). */
export function kindsOf(pageOrSlug) {
  return { ...KIND, ...SOCIETY_KINDS[slugOf(pageOrSlug)] };
}

export const ADDED = '二要素認証を追加しました。';
export const REMOVED = '二要素認証を削除しました。';
export const LAST_FACTOR =
  '二要素認証が1つしか登録されていないため、削除できません。先に別の認証方法を「設定」から追加してください。';
export const STEP_UP = '続行する際には再度認証してください。';
export const OTHER_FACTORS = '別の方法で認証する場合：';

/** 「ログイン方法変更」 from the member menu. */
export async function openLoginMethods(page) {
  await openMenuItem(page, 'ログイン方法変更');
  await page.getByRole('heading', { name: 'ログイン方法変更', level: 1 }).waitFor();
}

/** The section of one kind of second factor on 「ログイン方法変更」 (kind: a KIND value). */
export function kindSection(page, kind) {
  return page.getByRole('region', { name: kind, exact: true });
}

/** The row of the device named `name` in the section of `kind`. */
export function deviceRow(page, kind, name) {
  return kindSection(page, kind)
    .getByRole('listitem')
    .filter({ has: page.getByText(name, { exact: true }) });
}

/** The devices listed in the section of `kind`, by name. */
export async function deviceNames(page, kind) {
  const names = await kindSection(page, kind).locator('.device-name').allInnerTexts();
  return names.map((n) => n.trim());
}

/** 「設定」 in the section of `kind`. */
export async function clickAdd(page, kind) {
  await kindSection(page, kind).getByRole('link', { name: '設定' }).click();
}

/** 「削除」 on the device named `name` in the section of `kind`. */
export async function clickDelete(page, kind, name) {
  await deviceRow(page, kind, name).getByRole('link', { name: '削除' }).click();
}

/** The step-up page: 「続行する際には再度認証してください。」 → 「パスワード」 → 「ログイン」. */
export async function stepUpWithPassword(page, password, { shot = async () => {} } = {}) {
  await page.getByText(STEP_UP).waitFor();
  await shot('step-up');
  await page.getByLabel('パスワード', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();
}

/** The links under 「別の方法で認証する場合：」 on a second-factor page (empty if none). */
export async function otherFactorLinks(page) {
  const lead = page.getByText(OTHER_FACTORS);
  if ((await lead.count()) === 0) return [];
  return (await page.locator('.other-factors').getByRole('link').allInnerTexts()).map((t) => t.trim());
}

/** Follows the link to another kind of factor under 「別の方法で認証する場合：」. */
export async function switchFactor(page, kind) {
  await page.locator('.other-factors').getByRole('link', { name: kind, exact: true }).click();
}
