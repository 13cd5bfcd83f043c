// Mail the portal wrote to files (the embedded transport: <data dir>/mail/*.eml), read
// the way a member reads their inbox.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** The plain-text body of an .eml file written by the portal (UTF-8, base64 or 7bit). */
function textBody(raw) {
  const match = raw.match(/Content-Type: text\/plain[^\r\n]*\r?\n((?:[^\r\n]+\r?\n)*)\r?\n([\s\S]*?)(?:\r?\n--)/i);
  if (!match) return raw;
  const [, headers, body] = match;
  return /base64/i.test(headers) ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8') : body;
}

/**
 * Waits until a mail to `to` whose text contains `contains` arrives; resolves to its
 * plain-text body.
 */
export async function waitForMail(portal, to, contains, timeoutMs = 15_000) {
  const dir = path.join(portal.dataDir, 'mail');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let names = [];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.eml'));
    } catch {
      // not created yet
    }
    for (const name of names) {
      const raw = await readFile(path.join(dir, name), 'utf8');
      if (!new RegExp(`^To: .*${to.replace(/[.+]/g, '\\$&')}`, 'mi').test(raw)) continue;
      const text = textBody(raw);
      if (text.includes(contains)) return text;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no mail to ${to} containing ${contains} within ${timeoutMs} ms`);
}
