// The society admin console for browser tests: an admin invited with `portal admin create`
// who signs in with a password and an authenticator app (oathtool), the console's menu,
// and small files an admin uploads (a PNG drawn here, SVG icons).
//
//   const admin = await newPage(browser, CONSOLE_SCREEN);
//   await inviteAdmin(portal, admin, 'daiwakenpo', 'clerk@daiwa.example.jp', { shot });
//   await openConsoleMenu(admin, '利用規約', '利用規約');
//   await admin.getByLabel('新しいロゴ画像').setInputFiles(pngFile('logo.png', 64, 64));

import { crc32, deflateSync } from 'node:zlib';

import { portalCli } from './journeys.mjs';
import { freshCode } from './totp.mjs';

/** The laptop the console is used on. */
export const CONSOLE_SCREEN = { viewport: { width: 1280, height: 800 } };

/** The admin's password on the invitation (12+ characters, not a common one). */
export const ADMIN_PASSWORD = 'Console-pass-2026!';

/**
 * `portal admin create <slug> <email>` (role admin), then the invitation in `page`:
 * password twice 「パスワードを設定」, 「スキャンできませんか？」 key into oathtool, device name,
 * code 「実行」, the dashboard. `shot(step)` is called on the invitation, the app set-up
 * and the dashboard. Resolves to {email, key}.
 */
export async function inviteAdmin(portal, page, slug, email, { shot = async () => {}, deviceName = '事務所のパソコン' } = {}) {
  const { stdout } = await portalCli(portal, ['admin', 'create', slug, email]);
  const token = JSON.parse(stdout).setup_url.split('token=')[1];
  await page.goto(portal.url(slug, `/admin/invite?token=${token}`));
  await page.getByText(email).waitFor();
  await shot('invite');
  await page.getByLabel('パスワード', { exact: true }).fill(ADMIN_PASSWORD);
  await page.getByLabel('パスワード確認用').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'パスワードを設定' }).click();
  await page.getByText('スキャンできませんか？').click();
  const key = (await page.locator('#totp-key').textContent()).trim();
  await shot('totp');
  await page.getByLabel('デバイス名').fill(deviceName);
  await page.getByLabel('認証コード').fill(await freshCode(key));
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByRole('heading', { name: 'ダッシュボード', level: 1 }).waitFor();
  await shot('dashboard');
  return { email, key };
}

/** A link of the console's menu (「管理メニュー」), then the page's h1 `heading` (default: the link's name). */
export async function openConsoleMenu(page, link, heading = link) {
  await page.getByRole('navigation', { name: '管理メニュー' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: heading, level: 1, exact: true }).waitFor();
}

/** A step of 「設定」 (the sub-menu 「設定の手順」: 「デザイン」, 「サービスメニュー」, …). */
export async function openSettingsStep(page, link, heading = link) {
  await page.getByRole('navigation', { name: '設定の手順' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: heading, level: 1, exact: true }).waitFor();
}

/** One PNG chunk: length, type, data, CRC of type and data. */
function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed) >>> 0);
  return Buffer.concat([length, typed, crc]);
}

/**
 * A `width`×`height` RGBA PNG: a disc of `fg` on `bg` ([r, g, b, a] each), the way a
 * society's round emblem looks. A few hundred bytes for 64×64.
 */
export function png(width, height, { bg = [255, 255, 255, 0], fg = [10, 74, 128, 255] } = {}) {
  const raw = Buffer.alloc((width * 4 + 1) * height);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const r = Math.min(width, height) * 0.45;
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 4 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x += 1) {
      const inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
      const c = inside ? fg : bg;
      raw.set(c, row + 1 + x * 4);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** What setInputFiles takes for a file the admin picks from the PC. */
export function file(name, mimeType, content) {
  return { name, mimeType, buffer: Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8') };
}

/**
 * An <img>'s natural width once it has loaded (0 when it failed): what shows whether the
 * picture really reached the browser.
 */
export async function loadedWidth(img) {
  return img.evaluate(
    (el) =>
      el.complete
        ? el.naturalWidth
        : new Promise((resolve) => {
            el.addEventListener('load', () => resolve(el.naturalWidth), { once: true });
            el.addEventListener('error', () => resolve(0), { once: true });
          }),
  );
}

/** The lines of a CSV the console hands out (UTF-8, maybe a BOM, CRLF), without empty ones. */
export function csvLines(bytes) {
  return bytes.toString('utf8').replace(/^\ufeff/, '').split(/\r?\n/).filter((l) => l !== '');
}
