// Journey 10 of SPEC §3 (daiwakenpo manual 3-5, 「メールアドレスを変更する場合」): on the
// signed-in top page the member taps 「プロフィール変更」 in the member menu (opened first
// where it is folded away), then 「Eメール変更」. A sign-in older than the society's step-up age
// asks for the password and the second factor first (「続行する際には再度認証してください。」);
// right after a sign-in the page opens directly. 「メールアドレス更新」 shows the current
// address and has it in the field: the member deletes it, types the new one and taps
// 「実行」. A bad address is refused next to the field (a line break smuggled into the form
// on the phone, 「not-an-address」 on the desktop). The profile then shows the pending
// change; the mail to the NEW address carries the link that changes it, the OLD address is
// told, and the link is spent afterwards (「このリンクは使えません」). Both societies,
// phone and desktop.
//
// The step-up itself needs a sign-in older than the society allows (5 minutes); this file
// does not wait that long and only checks that a sign-in of a moment ago needs none.
// tests/e2e/email_change.rs covers the step-up.
// Screenshots: target/screenshots/recovery-j10-<slug>-<viewport>-<step>.png

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { STEP_UP } from './lib/factors.mjs';
import { openInbox, subjectOf } from './lib/inbox.mjs';
import { mailsTo, openMenuItem } from './lib/journeys.mjs';
import { TENANTS, VIEWPORTS, closing, newMember, sharedPortal } from './lib/suite.mjs';

const shared = sharedPortal();

const CONFIRM_SUBJECT = 'メールアドレス変更の確認';
const CHANGED_SUBJECT = 'メールアドレスが変更されました';
const SENT = '新しいメールアドレスに確認メールをお送りしました。';
const PENDING = '変更手続き中';
const CONTROL_REFUSED = 'メールアドレスに改行や制御文字は使用できません。';
// What the portal says to an address without 「@」.
const INVALID_REFUSED = 'メールアドレスを正しく入力してください。';

/** A new address nobody in this run has: new.<random>@example.jp. */
function newAddress() {
  return `new.${randomBytes(6).toString('hex')}@example.jp`;
}

/** The <dd> that follows the <dt> `term` in the page's facts list. */
function fact(page, term) {
  return page
    .getByRole('main')
    .locator('dt')
    .filter({ hasText: new RegExp(`^\\s*${term}\\s*$`) })
    .locator('xpath=following-sibling::dd[1]');
}

/** 「プロフィール変更」 from the member menu (opened first if it is folded away). */
async function openProfile(page) {
  await openMenuItem(page, 'プロフィール変更');
  await page.getByRole('heading', { name: 'プロフィール変更', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/profile');
}

/**
 * 「Eメール変更」 on the profile, right after a sign-in: the page opens directly, without
 * the step-up (「続行する際には再度認証してください。」) that an older sign-in gets.
 */
async function openEmailChange(page) {
  const link = page.getByRole('link', { name: 'Eメール変更', exact: true });
  assert.equal(await link.getAttribute('href'), '/profile/email');
  await link.click();
  const form = page.getByRole('heading', { name: 'メールアドレス更新', level: 1 });
  const stepUp = page.getByText(STEP_UP);
  await form.or(stepUp).first().waitFor();
  assert.ok(!(await stepUp.isVisible()), 'a sign-in of a moment ago needs no step-up');
  assert.equal(new URL(page.url()).pathname, '/profile/email');
}

/** The 「メールアドレスを変更する：」 link of a confirmation mail, checked to point at `slug`'s site. */
function changeLinkIn(mail, portal, slug) {
  const link = mail.text.match(/メールアドレスを変更する：\r?\n(\S+)/)?.[1];
  assert.ok(link, `a 「メールアドレスを変更する：」 line followed by the link in:\n${mail.text}`);
  const url = new URL(link);
  assert.match(url.protocol, /^https?:$/);
  assert.equal(url.host, new URL(portal.url(slug)).host, `the society's site: ${link}`);
  assert.equal(url.pathname, '/email/change');
  assert.match(url.search, /^\?token=[0-9a-f]{64}$/, `one 64-hex token: ${link}`);
  return link;
}

/** The field's message: a role=alert that the field names in aria-describedby, and aria-invalid. */
async function expectRefused(page, field, message) {
  const alert = page.getByRole('alert').filter({ hasText: message });
  await alert.waitFor();
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  const describedBy = ((await field.getAttribute('aria-describedby')) ?? '').split(/\s+/);
  assert.ok(describedBy.includes(await alert.getAttribute('id')), 'the message belongs to 「メールアドレス」');
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) {
    const { slug } = tenant;
    test(`journey 10: the e-mail address changes through the link sent to the new one on ${slug} (${viewportName})`, { timeout: 90_000 }, async () => {
      const m = await newMember(shared, tenant, viewportName, 'recovery-j10');
      await closing([m], async () => {
        const { page, shot, member, inbox } = m;
        const portal = shared.portal;
        const oldAddress = member.email;
        const address = newAddress();
        const newInbox = await openInbox(portal, address);

        // ①② top page → 「プロフィール変更」: the address on record and 「Eメール変更」.
        await openProfile(page);
        assert.equal((await fact(page, 'メールアドレス').innerText()).trim(), oldAddress);
        await shot('1-profile');

        // ③–⑤ 「Eメール変更」: just signed in, so no step-up.
        await openEmailChange(page);

        // ⑥ メールアドレス更新: the current address shown and in the field.
        assert.equal((await fact(page, '現在のメールアドレス').innerText()).trim(), oldAddress);
        const field = page.getByLabel('新しいメールアドレス', { exact: true });
        assert.equal(await field.inputValue(), oldAddress, 'the field holds the current address');
        const submit = page.getByRole('button', { name: '実行', exact: true });
        await shot('2-form');

        // Bad input is refused next to the field, and nothing is sent.
        if (viewportName === 'phone') {
          // A line break cannot be typed into the field: put it into the form by script
          // (a textarea, since an <input> strips line breaks from its value).
          await page.evaluate(() => {
            const input = document.getElementById('email');
            const smuggled = document.createElement('textarea');
            smuggled.name = input.name;
            smuggled.hidden = true;
            smuggled.value = 'x@example.jp\nBcc: y@example.jp';
            input.removeAttribute('name');
            input.form.append(smuggled);
          });
          await submit.click();
          await expectRefused(page, field, CONTROL_REFUSED);
          assert.equal(await field.inputValue(), '', 'the line break is not echoed back');
        } else {
          await field.fill('not-an-address');
          await submit.click();
          await expectRefused(page, field, INVALID_REFUSED);
          assert.equal(await field.inputValue(), 'not-an-address', 'what was typed stays to be corrected');
        }
        assert.equal(new URL(page.url()).pathname, '/profile/email');
        assert.equal((await fact(page, '現在のメールアドレス').innerText()).trim(), oldAddress);
        await shot('3-refused');

        // 「一度削除します」, the new address, 「実行」 → the profile with the pending change.
        await field.clear();
        assert.equal(await field.inputValue(), '');
        await field.pressSequentially(address);
        await submit.click();
        await page.getByRole('status').filter({ hasText: SENT }).waitFor();
        assert.equal(new URL(page.url()).pathname, '/profile');
        const line = fact(page, 'メールアドレス');
        const pending = await line.innerText();
        assert.ok(pending.includes(oldAddress), `the old address is still the one on record: ${pending}`);
        assert.ok(pending.includes(PENDING), `「${PENDING}」: ${pending}`);
        assert.ok(pending.includes(address), `the new address in the pending line: ${pending}`);
        await shot('4-pending');

        // The mail with the link goes to the new address only.
        const mail = await newInbox.next({ subject: CONFIRM_SUBJECT });
        assert.match(mail.headers, /^from:.*@/im, 'from the society');
        assert.ok(mail.text.includes(member.name), `addressed to the member:\n${mail.text}`);
        const link = changeLinkIn(mail, portal, slug);
        assert.deepEqual(await inbox.take(CONFIRM_SUBJECT), [], 'no confirmation mail to the old address');
        const smuggled = (await mailsTo(portal, 'y@example.jp')).concat(await mailsTo(portal, 'x@example.jp'));
        assert.deepEqual(smuggled.map(subjectOf), [], 'nothing went to the refused input');

        // The link shows the new address; 「メールアドレスを変更する」 changes it.
        const opened = await page.goto(link);
        assert.equal(opened.status(), 200);
        await page.getByRole('heading', { name: 'メールアドレスの変更', level: 1 }).waitFor();
        assert.equal((await fact(page, '新しいメールアドレス').innerText()).trim(), address);
        await page.getByRole('button', { name: 'メールアドレスを変更する' }).click();
        await page.getByRole('heading', { name: 'メールアドレスを変更しました', level: 1 }).waitFor();
        await page.getByRole('status').filter({ hasText: address }).waitFor();
        await shot('5-changed');
        await page.getByRole('link', { name: 'プロフィール変更へ' }).click();
        await page.getByRole('heading', { name: 'プロフィール変更', level: 1 }).waitFor();
        assert.equal(new URL(page.url()).pathname, '/profile');
        const now = (await line.innerText()).trim();
        assert.equal(now, address, 'the new address, and no pending change');
        assert.ok(!(await page.getByRole('main').innerText()).includes(PENDING));
        await shot('6-profile-changed');

        // The old address is told, naming the new one.
        const notice = await inbox.next({ subject: CHANGED_SUBJECT });
        assert.ok(notice.text.includes(address), `the new address in:\n${notice.text}`);
        assert.deepEqual(await newInbox.take(CHANGED_SUBJECT), [], 'the notice goes to the old address');

        // The link is spent.
        const again = await page.goto(link);
        assert.equal(again.status(), 400);
        await page.getByRole('heading', { name: 'このリンクは使えません', level: 1 }).waitFor();
        assert.match(await page.getByRole('alert').innerText(), /このリンクは/);
        await shot('7-link-spent');
      });
    });
  }
}
