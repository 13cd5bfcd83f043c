// The tenants' top pages as a member sees them, on a phone and on a desktop.
//
// One portal and one browser serve every test in this file; each test opens its own
// browser context. Screenshots land in target/screenshots/top-<slug>-<viewport>.png.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { newPage, screenshot } from './lib/server.mjs';
import { VIEWPORTS, sharedPortal, tenantsWith } from './lib/suite.mjs';

// Each society's own name (its display_name), as its pages show it.
const TENANTS = tenantsWith({
  daiwakenpo: { society: '大和証券グループ健康保険組合' },
  kanekakenpo: { society: 'カネカ健康保険組合' },
});

// How far down the login link may start to count as "top".
const TOP_BAND_PX = 120;

const shared = sharedPortal();

/** Opens `url` in a fresh context with the named viewport; returns {page, response}. */
async function open(viewportName, url) {
  const page = await newPage(shared.browser, VIEWPORTS[viewportName]);
  // "load" waits for images too, so the logo has been fetched by then.
  const response = await page.goto(url, { waitUntil: 'load' });
  assert.ok(response, `no response for ${url}`);
  return { page, response };
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  const { width } = VIEWPORTS[viewportName].viewport;

  for (const { slug, society } of TENANTS) {
    test(`top page of ${slug} on a ${viewportName} (${width}px)`, { timeout: 60_000 }, async () => {
      const url = shared.portal.url(slug);
      const { page, response } = await open(viewportName, url);
      try {
        assert.equal(response.status(), 200, `GET ${url}`);

        assert.equal(await page.evaluate(() => document.documentElement.lang), 'ja', '<html lang>');

        // The society's name is shown.
        await page.getByText(society).filter({ visible: true }).first().waitFor({ state: 'visible' });

        // 「ログイン」 is a visible link at the top right.
        const login = page.getByRole('link', { name: 'ログイン', exact: true }).filter({ visible: true }).first();
        await login.waitFor({ state: 'visible' });
        const box = await login.boundingBox();
        assert.ok(box, 'the login link has a bounding box');
        const right = box.x + box.width;
        assert.ok(right > width / 2, `login link's right edge ${right}px is in the right half of ${width}px`);
        assert.ok(right <= width + 1, `login link's right edge ${right}px is inside the ${width}px viewport`);
        assert.ok(box.y >= 0 && box.y < TOP_BAND_PX, `login link's top ${box.y}px is within the first ${TOP_BAND_PX}px`);

        // The society's logo in the header has loaded.
        const logo = page.locator('header img').first();
        await logo.waitFor({ state: 'attached' });
        const logoWidth = await logo.evaluate((img) => (img.complete ? img.naturalWidth : 0));
        assert.ok(logoWidth > 0, `the header logo (${await logo.getAttribute('src')}) has loaded`);

        await screenshot(page, `top-${slug}-${viewportName}`);
      } finally {
        await page.context().close();
      }
    });
  }

  test(`the two societies' headers differ on a ${viewportName}`, { timeout: 60_000 }, async () => {
    const colors = {};
    for (const { slug } of TENANTS) {
      const { page, response } = await open(viewportName, shared.portal.url(slug));
      try {
        assert.equal(response.status(), 200);
        colors[slug] = await page
          .locator('header')
          .first()
          .evaluate((el) => getComputedStyle(el).backgroundColor);
      } finally {
        await page.context().close();
      }
    }
    assert.notEqual(
      colors.daiwakenpo,
      colors.kanekakenpo,
      `header background-color: daiwakenpo ${colors.daiwakenpo}, kanekakenpo ${colors.kanekakenpo}`,
    );
  });
}

test('an unknown host is a 404 that names no society', { timeout: 60_000 }, async () => {
  const url = shared.portal.url('nobody');
  const { page, response } = await open('desktop', url);
  try {
    assert.equal(response.status(), 404, `GET ${url}`);
    const text = await page.evaluate(() => document.documentElement.textContent ?? '');
    for (const { society } of TENANTS) {
      assert.ok(!text.includes(society), `the 404 page does not mention ${society}`);
    }
    await screenshot(page, 'unknown-host');
  } finally {
    await page.context().close();
  }
});
