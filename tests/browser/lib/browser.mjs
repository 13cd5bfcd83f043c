// Headless Debian Chromium (/usr/bin/chromium) driven by playwright-core.
//
// playwright-core never downloads a browser: we point it at the system one (tests/run
// installs the `chromium` package). Each launch gets a fresh, empty profile: Playwright
// creates a new temporary --user-data-dir for every `chromium.launch()` and removes it
// on close.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { repoRoot } from './paths.mjs';

export const CHROMIUM_PATH = process.env.PORTAL_TEST_CHROMIUM || '/usr/bin/chromium';

/** Where screenshots go; target/ is not committed. */
export const SCREENSHOT_DIR = path.join(repoRoot, 'target', 'screenshots');

// This machine has no network but loopback: without the background-networking flags
// Chromium keeps trying to reach Google's services. --no-sandbox because tests run as root.
// --no-proxy-server so that a proxy set in the environment never sees test traffic.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-proxy-server',
];

/** Launches headless Chromium with a fresh profile. Close it with `browser.close()`. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * A page in a new browser context (own cookies and storage) with the given Playwright
 * context options (viewport, deviceScaleFactor, isMobile, ...). Close the context with
 * `page.context().close()`.
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({ locale: 'ja-JP', ...contextOptions });
  context.setDefaultTimeout(15_000);
  return context.newPage();
}

/** Saves a full-page PNG to target/screenshots/<name>.png and returns its path. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
