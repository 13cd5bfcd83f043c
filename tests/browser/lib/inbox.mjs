// A member's inbox: the mails the portal wrote to <dataDir>/mail/ for one address, read
// in the order they arrive (the file transport names files at random, so "new" means
// "not seen before by this inbox").
//
//   const inbox = await openInbox(portal, member.email);   // what is there now counts as read
//   const code = await inbox.code();                        // 「ワンタイムパスワード：123456」
//   await inbox.next({ subject: '二要素認証の追加のお知らせ' });

import { setTimeout as sleep } from 'node:timers/promises';

import { mailsTo } from './journeys.mjs';

/** Decodes RFC 2047 encoded words (=?UTF-8?B?…?= / =?UTF-8?Q?…?=) in a header value. */
export function decodeHeader(value) {
  return value
    .replace(/\?=\s+=\?/g, '?==?') // white space between encoded words is not text
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset, encoding, text) => {
      const bytes = /b/i.test(encoding)
        ? Buffer.from(text, 'base64')
        : Buffer.from(
            text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (__, hex) => String.fromCharCode(parseInt(hex, 16))),
            'latin1',
          );
      return new TextDecoder(charset.toLowerCase()).decode(bytes);
    });
}

/** The decoded Subject of a mail as mailsTo returns it. */
export function subjectOf(mail) {
  return decodeHeader(mail.headers.match(/^subject:\s*(.*)$/im)?.[1] ?? '');
}

/** The one-time password in a 「ワンタイムパスワードのお知らせ」 mail. */
export function codeIn(mail) {
  const code = mail.text.match(/ワンタイムパスワード：(\d+)/)?.[1];
  if (!code) throw new Error(`no 「ワンタイムパスワード：」 line in:\n${mail.text}`);
  return code;
}

/**
 * The inbox of `address`. Mails already there when it is opened count as read unless
 * `{ unread: true }`.
 */
export async function openInbox(portal, address, { unread = false } = {}) {
  const seen = new Set();
  if (!unread) for (const mail of await mailsTo(portal, address)) seen.add(mail.file);

  return {
    address,
    /**
     * The first unread mail whose subject contains `subject` (any, if not given), waiting
     * up to `timeoutMs`; it is read afterwards. Resolves to {subject, text, headers, file}.
     */
    async next({ subject = '', timeoutMs = 10_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const mail of await mailsTo(portal, address)) {
          if (seen.has(mail.file)) continue;
          const mailSubject = subjectOf(mail);
          if (mailSubject.includes(subject)) {
            seen.add(mail.file);
            return { ...mail, subject: mailSubject };
          }
        }
        if (Date.now() > deadline) {
          throw new Error(`no new mail to ${address} with the subject 「${subject}」 within ${timeoutMs} ms`);
        }
        await sleep(150);
      }
    },
    /** Unread mails whose subject contains `subject`, without waiting; they are read afterwards. */
    async take(subject = '') {
      const found = [];
      for (const mail of await mailsTo(portal, address)) {
        if (seen.has(mail.file)) continue;
        const mailSubject = subjectOf(mail);
        if (mailSubject.includes(subject)) {
          seen.add(mail.file);
          found.push({ ...mail, subject: mailSubject });
        }
      }
      return found;
    },
    /** The code of the next unread 「ワンタイムパスワードのお知らせ」. */
    async code(options = {}) {
      return codeIn(await this.next({ subject: 'ワンタイムパスワードのお知らせ', ...options }));
    },
  };
}
