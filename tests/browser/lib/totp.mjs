// An authenticator app and a QR reader for browser tests: the real `oathtool` and
// `zbarimg` (Debian oathtool and zbar-tools, installed by tests/run).

import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The 6-digit code the app shows for `key`, `offsetSeconds` from now. */
export async function totpCode(key, offsetSeconds = 0) {
  const args = ['--totp', '-b', key.toUpperCase()];
  if (offsetSeconds) args.push('-N', `now ${offsetSeconds >= 0 ? '+' : '-'} ${Math.abs(offsetSeconds)} seconds`);
  const { stdout } = await run('oathtool', args);
  return stdout.trim();
}

/** Decodes a QR code image (PNG bytes) the way a phone camera would; the text in it. */
export async function readQr(png) {
  const dir = await mkdtemp(path.join(tmpdir(), 'portal-qr-'));
  const file = path.join(dir, 'qr.png');
  await writeFile(file, png);
  const { stdout } = await run('zbarimg', ['--quiet', '--raw', file]);
  return stdout.trim();
}

/**
 * On the 「ワンタイムパスワード設定」 page: checks the QR code against the key shown under
 * 「スキャンできませんか？」, registers the app as `deviceName` with a real code (after one
 * wrong code) and returns the key.
 */
export async function registerApp(page, { deviceName = 'iPhone', shot = async () => {} } = {}) {
  await page.getByRole('heading', { name: 'ワンタイムパスワード設定' }).waitFor();
  await page.getByText('スキャンできませんか？').click();
  await page.getByText('2.アプリケーションを開き、キーを入力します').waitFor();
  const key = (await page.locator('#totp-key').innerText()).trim();
  // What a phone camera sees: the QR code as rendered on the screen.
  const uri = await readQr(await page.getByRole('img', { name: '認証アプリに登録するQRコード' }).screenshot());
  if (!uri.startsWith('otpauth://totp/') || !uri.includes(`secret=${key}&`)) {
    throw new Error(`QR code ${uri} does not carry the key ${key}`);
  }
  await shot('totp-setup');
  await page.getByLabel('デバイス名').fill(deviceName);
  await page.getByLabel('ワンタイムパスワード（6桁）').fill('000000' === (await totpCode(key)) ? '111111' : '000000');
  await page.getByRole('button', { name: '実行' }).click();
  await page.getByRole('alert').filter({ hasText: '認証コードが異なります' }).waitFor();
  // Apps accept the key in lower case too (manual 2-4-1 ⑥).
  await page.getByLabel('ワンタイムパスワード（6桁）').fill(await totpCode(key.toLowerCase()));
  markUsed(key);
  await page.getByRole('button', { name: '実行' }).click();
  return { key, uri };
}

// The last time step each key's code was used for; the portal accepts every step once.
const lastStep = new Map();

/**
 * A code for `key` that the portal has not seen yet: the current step, or the next one
 * (accepted within ±1 step), waiting for the clock when both were used already.
 */
export async function freshCode(key) {
  const period = 30;
  for (;;) {
    const now = Date.now() / 1000;
    const current = Math.floor(now / period);
    const candidate = Math.max(current, (lastStep.get(key) ?? -1) + 1);
    if (candidate <= current + 1) {
      lastStep.set(key, candidate);
      return totpCode(key, (candidate - current) * period);
    }
    await new Promise((r) => setTimeout(r, ((current + 1) * period - now) * 1000 + 200));
  }
}

/** Records that the code of the current step was used (e.g. by the set-up). */
export function markUsed(key) {
  lastStep.set(key, Math.max(lastStep.get(key) ?? -1, Math.floor(Date.now() / 1000 / 30)));
}
