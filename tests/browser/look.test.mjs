// WCAG 2.1 AA text contrast (1.4.3) on the member pages, both societies, phone and desktop:
// the logged-out top page, 「ログイン」 and the forgotten-password page, and for a member who
// finished the first login the member top page, 「プロフィール変更」 and 「ログイン方法変更」.
//
// Every visible element with text of its own is measured in the page: its computed colour
// over the background its ancestors' background-colors build up (each rgba one composited
// over the one below it, white below all), as the relative-luminance contrast ratio. Normal
// text needs 4.5:1, large text (≥ 24px, or ≥ 18.66px bold) 3:1. Text over a background-image
// (gradient, picture) is not measured and only counted. The pages are measured as they load
// (no hover, no focus ring on the measured elements).
//
// Also: the member's name in the header (.member-name) at 4.5:1 or more on each society (it
// was 3.99:1 on kanekakenpo), and the service icons of the member top page loaded and drawn
// in the society's primary_color (tenants/<slug>.toml), with no `currentColor` left in them.
//
// Screenshots: target/screenshots/look-<slug>-<viewport>-<page>.png

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { newPage, repoRoot, screenshot } from './lib/server.mjs';
import { VIEWPORTS, closing, newMember, sharedPortal, tenantsWith } from './lib/suite.mjs';

/** The society's primary colour (#rrggbb), as its tenant file states it under [theme]. */
function primaryColorOf(slug) {
  const text = readFileSync(path.join(repoRoot, 'tenants', `${slug}.toml`), 'utf8');
  const m = text.match(/^primary_color\s*=\s*"(#[0-9A-Fa-f]{6})"\s*$/m);
  assert.ok(m, `tenants/${slug}.toml has a [theme] primary_color`);
  return m[1];
}

const TENANTS = tenantsWith((t) => ({ primaryColor: primaryColorOf(t.slug) }));

/** AA minimum contrast ratios (WCAG 2.1 SC 1.4.3). */
const NORMAL_MIN = 4.5;
const LARGE_MIN = 3;

const LOGGED_OUT_PAGES = [
  { name: 'top', path: '/' },
  { name: 'login', path: '/login' },
  { name: 'forgot-password', path: '/forgot-password' },
];
const SIGNED_IN_PAGES = [
  { name: 'member-top', path: '/' },
  { name: 'profile', path: '/profile' },
  { name: 'login-methods', path: '/login-methods' },
];

const shared = sharedPortal();

/**
 * Runs in the page: measures every visible element with non-whitespace text of its own
 * (or, with `selector`, only the elements it matches). Resolves to
 * {measured: [{desc, text, ratio, fg, bg, fontSize, fontWeight, large, min}], skipped: [desc]}
 * where `skipped` are the texts over a background-image.
 */
function measureContrast({ selector, normalMin, largeMin }) {
  const parse = (css) => {
    // Computed colours come back as rgb()/rgba() (or color(srgb …) for some inputs).
    const nums = css.match(/-?[\d.]+(e-?\d+)?%?/g) ?? [];
    if (css.startsWith('color(srgb')) {
      const [r, g, b, a = '1'] = nums;
      return { r: Number(r) * 255, g: Number(g) * 255, b: Number(b) * 255, a: a.endsWith('%') ? parseFloat(a) / 100 : Number(a) };
    }
    if (css === 'transparent') return { r: 0, g: 0, b: 0, a: 0 };
    const [r, g, b, a = '1'] = nums;
    return { r: Number(r), g: Number(g), b: Number(b), a: a.endsWith('%') ? parseFloat(a) / 100 : Number(a) };
  };
  /** `top` (with alpha) over the opaque `bottom`. */
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const channel = (v) => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hex = (c) => `#${[c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
  const describe = (el) => {
    const cls = typeof el.className === 'string' && el.className.trim() ? `.${el.className.trim().split(/\s+/).join('.')}` : '';
    const id = el.id ? `#${el.id}` : '';
    const parent = el.parentElement;
    const pcls = parent && typeof parent.className === 'string' && parent.className.trim()
      ? `.${parent.className.trim().split(/\s+/).join('.')}` : '';
    return `${parent ? `${parent.tagName.toLowerCase()}${pcls} > ` : ''}${el.tagName.toLowerCase()}${id}${cls}`;
  };
  const ownText = (el) => [...el.childNodes]
    .filter((n) => n.nodeType === Node.TEXT_NODE)
    .map((n) => n.textContent)
    .join('')
    .replace(/\s+/g, ' ')
    .trim();

  const candidates = selector ? [...document.querySelectorAll(selector)] : [...document.body.querySelectorAll('*')];
  const measured = [];
  const skipped = [];
  for (const el of candidates) {
    const text = ownText(el);
    if (!text) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden') continue;
    // Also what is not rendered though it has a box (the body of a closed <details>).
    if (el.checkVisibility && !el.checkVisibility({ contentVisibilityAuto: true, visibilityProperty: true })) continue;
    // Opacity is inherited visually: the element's and every ancestor's.
    let opacity = 1;
    for (let a = el; a; a = a.parentElement) opacity *= Number(getComputedStyle(a).opacity);
    if (opacity === 0) continue;

    // The background: the element's and its ancestors' background-colors, top first, down
    // to the first opaque one; a background-image on the way makes it unknown.
    const layers = [];
    let image = null;
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.backgroundImage && s.backgroundImage !== 'none') {
        image = a;
        break;
      }
      const c = parse(s.backgroundColor);
      if (c.a > 0) layers.push(c);
      if (c.a >= 1) break;
    }
    const desc = `${describe(el)} 「${text.slice(0, 40)}」`;
    if (image) {
      skipped.push(`${desc} (background-image on ${describe(image)})`);
      continue;
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) bg = over(layer, bg);
    const color = parse(style.color);
    const fg = over({ ...color, a: color.a * opacity }, bg);

    const fontSize = parseFloat(style.fontSize);
    const fontWeight = Number(style.fontWeight) || (style.fontWeight === 'bold' ? 700 : 400);
    const large = fontSize >= 24 || (fontSize >= 18.66 && fontWeight >= 700);
    const min = large ? largeMin : normalMin;
    measured.push({
      desc,
      text: text.slice(0, 40),
      exact: ratio(fg, bg),
      // For messages, cut (not rounded) to 2 places: 4.499 reads 4.49, never 4.50.
      ratio: Math.floor(ratio(fg, bg) * 100) / 100,
      fg: hex(fg),
      bg: hex(bg),
      rawColor: style.color,
      fontSize,
      fontWeight,
      large,
      min,
    });
  }
  return { measured, skipped };
}

/** Measures `page` (already on the page to measure); returns {failures, measured, skipped}. */
async function contrastOf(page, selector) {
  const { measured, skipped } = await page.evaluate(measureContrast, {
    selector: selector ?? null,
    normalMin: NORMAL_MIN,
    largeMin: LARGE_MIN,
  });
  // `ratio` is cut to 2 places for the messages; the check uses the exact one.
  const failures = measured.filter((m) => m.exact < m.min);
  return { failures, measured, skipped };
}

const formatFailure = (where, f) =>
  `  ${where}: ${f.desc} — ${f.ratio}:1 < ${f.min}:1 (text ${f.fg} [${f.rawColor}] on ${f.bg}, ` +
  `${f.fontSize}px weight ${f.fontWeight}${f.large ? ', large' : ''})`;

/** Loads `urlPath`, waits for it and takes the screenshot; returns what contrastOf returns. */
async function lookAt(page, portal, slug, viewportName, { name, path: urlPath }) {
  const response = await page.goto(portal.url(slug, urlPath), { waitUntil: 'load' });
  assert.equal(response?.status(), 200, `GET ${urlPath} on ${slug}`);
  // Nothing hovered or focused by the last click: the pointer goes to a corner of nothing.
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.activeElement?.blur?.());
  await screenshot(page, `look-${slug}-${viewportName}-${name}`);
  return contrastOf(page);
}

function assertNoFailures(label, results) {
  const failures = results.flatMap(({ where, failures: fs }) => fs.map((f) => formatFailure(where, f)));
  const measured = results.reduce((n, r) => n + r.measured.length, 0);
  const skipped = results.flatMap(({ where, skipped: ss }) => ss.map((s) => `  ${where}: ${s}`));
  const lowest = results
    .flatMap(({ where, measured: ms }) => ms.map((m) => ({ where, ...m })))
    .sort((a, b) => a.exact / a.min - b.exact / b.min)[0];
  console.log(
    `${label}: ${measured} texts measured, ${failures.length} below AA` +
      (lowest ? ` (closest: ${lowest.ratio}:1 of ${lowest.min}:1, ${lowest.where} ${lowest.desc})` : '') +
      ', ' +
      `${skipped.length} skipped over a background-image${skipped.length ? `:\n${skipped.join('\n')}` : ''}`,
  );
  assert.ok(measured > 0, `${label}: no text was measured at all`);
  assert.deepEqual(failures, [], `${label}: text below WCAG 2.1 AA contrast:\n${failures.join('\n')}`);
}

for (const viewportName of Object.keys(VIEWPORTS)) {
  for (const tenant of TENANTS) {
    const { slug } = tenant;

    test(`AA text contrast of the logged-out pages of ${slug} (${viewportName})`, { timeout: 60_000 }, async () => {
      const page = await newPage(shared.browser, VIEWPORTS[viewportName]);
      try {
        const results = [];
        for (const p of LOGGED_OUT_PAGES) {
          results.push({ where: `${slug} ${viewportName} ${p.path}`, ...(await lookAt(page, shared.portal, slug, viewportName, p)) });
        }
        assertNoFailures(`${slug} ${viewportName} logged out`, results);
      } catch (e) {
        await screenshot(page, `look-${slug}-${viewportName}-failure`).catch(() => {});
        throw e;
      } finally {
        await page.context().close();
      }
    });

    test(`AA text contrast of a signed-in member's pages of ${slug} (${viewportName})`, { timeout: 120_000 }, async () => {
      const m = await newMember(shared, tenant, viewportName, 'look');
      await closing([m], async () => {
        const { page } = m;
        const portal = shared.portal;
        const results = [];
        for (const p of SIGNED_IN_PAGES) {
          results.push({ where: `${slug} ${viewportName} ${p.path} (signed in)`, ...(await lookAt(page, portal, slug, viewportName, p)) });

          // The member's name in the header, on every signed-in page.
          const name = await contrastOf(page, '.member-name');
          assert.equal(name.skipped.length, 0, `.member-name on ${p.path} is over a background-image: ${name.skipped}`);
          assert.equal(name.measured.length, 1, `one visible .member-name with text on ${p.path} of ${slug}`);
          const [n] = name.measured;
          console.log(
            `.member-name on ${slug} ${viewportName} ${p.path}: ${n.ratio}:1 (text ${n.fg} on ${n.bg}, ` +
              `${n.fontSize}px weight ${n.fontWeight})`,
          );
          assert.ok(n.exact >= NORMAL_MIN, `.member-name 「${n.text}」 on ${slug} ${p.path}: ${n.ratio}:1 < ${NORMAL_MIN}:1 (text ${n.fg} on ${n.bg})`);
        }

        // The service icons of the member top page, in the society's primary colour.
        await page.goto(portal.url(slug, '/'), { waitUntil: 'load' });
        const icons = page.locator('.service img');
        const count = await icons.count();
        assert.ok(count > 0, `the member top page of ${slug} lists services with icons`);
        for (let i = 0; i < count; i += 1) {
          const icon = icons.nth(i);
          const { src, naturalWidth } = await icon.evaluate(async (img) => {
            if (!img.complete) await new Promise((resolve) => img.addEventListener('load', resolve, { once: true }));
            return { src: img.src, naturalWidth: img.naturalWidth };
          });
          assert.ok(naturalWidth > 0, `service icon ${src} has loaded (naturalWidth ${naturalWidth})`);
          // Node (where page.request runs) does not resolve <slug>.localhost as Chromium
          // does: the same request to the loopback address, with the society's host.
          const url = new URL(src);
          const response = await page.request.get(`http://127.0.0.1:${url.port}${url.pathname}${url.search}`, {
            headers: { host: url.host },
          });
          assert.equal(response.status(), 200, `GET ${src}`);
          const type = response.headers()['content-type'] ?? '';
          assert.match(type, /^image\/svg\+xml/, `${src} is served as SVG`);
          const svg = await response.text();
          assert.match(svg, /<svg[\s>]/, `${src} is an SVG`);
          assert.ok(
            svg.toLowerCase().includes(tenant.primaryColor.toLowerCase()),
            `${src} is drawn in ${slug}'s primary_color ${tenant.primaryColor}:\n${svg}`,
          );
          assert.ok(!svg.includes('currentColor'), `${src} has no currentColor left:\n${svg}`);
        }

        assertNoFailures(`${slug} ${viewportName} signed in`, results);
      });
    });
  }
}
