// What every browser test file sets up the same way: the societies and the two screens it
// runs on, one portal and one browser for the whole file, and members who have finished
// the first login, each on a page of their own that is closed (after a screenshot on
// failure) when their test is done.
//
//   const shared = sharedPortal();                    // before/after hooks of this file
//   for (const viewportName of Object.keys(VIEWPORTS)) {
//     for (const tenant of TENANTS) {
//       test(`… on ${tenant.slug} (${viewportName})`, async () => {
//         const m = await newMember(shared, tenant, viewportName, 'file-case');
//         await closing([m], async () => { … m.page … });
//       });
//     }
//   }

import { after, before } from 'node:test';

import { openInbox } from './inbox.mjs';
import { firstLogin } from './journeys.mjs';
import { addMember } from './members.mjs';
import { launchBrowser, newPage, screenshot, startPortal } from './server.mjs';
import { addAuthenticator } from './webauthn.mjs';

/**
 * The societies the tests run against (tenants/<slug>.toml), each with the name the tests
 * give its members (`name`, as addMember takes it). A file that needs more about a society
 * adds it with `tenantsWith`; a file that wants other names says so itself.
 */
export const TENANTS = [
  { slug: 'daiwakenpo', name: 'ダイワ タロウ' },
  { slug: 'kanekakenpo', name: 'カネカ ハナコ' },
];

/**
 * TENANTS with values of one test file's own added to each: given by slug,
 * `tenantsWith({ daiwakenpo: { methods: 2 }, kanekakenpo: { methods: 3 } })`, where every
 * society must be given values (so that one added to TENANTS cannot go without them
 * unnoticed), or worked out from the society, `tenantsWith((t) => ({ contact: contactOf(t.slug) }))`.
 */
export function tenantsWith(values) {
  if (typeof values === 'function') return TENANTS.map((tenant) => ({ ...tenant, ...values(tenant) }));
  const unknown = Object.keys(values).filter((slug) => !TENANTS.some((t) => t.slug === slug));
  if (unknown.length > 0) throw new Error(`tenantsWith: no society ${unknown.join(', ')} in TENANTS`);
  return TENANTS.map((tenant) => {
    if (!values[tenant.slug]) throw new Error(`tenantsWith: no values for ${tenant.slug}`);
    return { ...tenant, ...values[tenant.slug] };
  });
}

/**
 * The screens the journeys are walked on, as Playwright context options (newPage): a phone
 * (touch, two device pixels to a CSS pixel) and a desktop PC.
 */
export const VIEWPORTS = {
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  desktop: { viewport: { width: 1280, height: 800 } },
};

/**
 * Registers node:test hooks that start one portal (startPortal(`portalOptions`)) and one
 * headless Chromium before the first test of the calling file and stop both after its
 * last. Call it once, at the top level of a test file.
 *
 * Returns an object whose `portal` and `browser` are the started ones; read them inside
 * tests and hooks (they do not exist yet while the file is loaded: reading them then throws).
 *
 * @param {Parameters<typeof startPortal>[0]} [portalOptions]
 * @returns {{portal: Awaited<ReturnType<typeof startPortal>>,
 *   browser: Awaited<ReturnType<typeof launchBrowser>>}}
 */
export function sharedPortal(portalOptions) {
  let portal;
  let browser;
  before(async () => {
    portal = await startPortal(portalOptions);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await portal?.stop();
  });
  const started = (what, value) => {
    if (!value) throw new Error(`the shared ${what} is started by a before hook: use it inside a test`);
    return value;
  };
  return {
    get portal() {
      return started('portal', portal);
    },
    get browser() {
      return started('browser', browser);
    },
  };
}

/**
 * A member of `tenant` on `portal` who has just finished the first login (firstLogin),
 * on the top page of a page of their own (a fresh browser context on `viewportName`).
 *
 * Screenshots go to target/screenshots/<label>-<slug>-<viewport>-<step>.png, those of the
 * first login with the step `0-<its step>`. The member's inbox is opened before the first
 * login, so it holds the mails from then on and a set-up can read the code mailed to it.
 *
 * @param {{portal: object, browser: object}} where the portal and the browser, usually
 *   what sharedPortal returned
 * @param {{slug: string, name: string}} tenant an element of TENANTS (`name` is the member's)
 * @param {string} viewportName a key of VIEWPORTS
 * @param {string} label the file and the case, e.g. 'passkey-j3'
 * @param {object} [options]
 * @param {boolean} [options.authenticator] give the page a virtual authenticator first
 *   (lib/webauthn.mjs), which it keeps for good
 * @param {(context: {inbox: object}) => object} [options.firstLogin] what firstLogin takes
 *   besides `shot` (`method`, `setUp`, …); the default is the authenticator app
 * @returns {Promise<{page, shot: (step: string) => Promise<string>, member, slug: string,
 *   userId: string, password: string, totpKey?: string, setUp: any, inbox, authenticator?}>}
 *   (`setUp`: what `options.firstLogin().setUp` resolved to). On failure the page is shot
 *   ('failure') and closed; afterwards close it with `closing`.
 */
export async function newMember({ portal, browser }, tenant, viewportName, label, options = {}) {
  const { slug, name } = tenant;
  const page = await newPage(browser, VIEWPORTS[viewportName]);
  const shot = (step) => screenshot(page, `${label}-${slug}-${viewportName}-${step}`);
  try {
    const authenticator = options.authenticator ? await addAuthenticator(page) : undefined;
    const member = await addMember(portal, slug, { name });
    const inbox = await openInbox(portal, member.email);
    const loginOptions = options.firstLogin?.({ inbox }) ?? {};
    const { userId, password, totpKey, setUp } = await firstLogin(page, portal, slug, member, {
      ...loginOptions,
      shot: (s) => shot(`0-${s}`),
    });
    return { page, shot, member, slug, userId, password, totpKey, setUp, inbox, authenticator };
  } catch (e) {
    await shot('failure').catch(() => {});
    await page.context().close();
    throw e;
  }
}

/**
 * Runs `body` and closes the pages of `members` (as newMember resolves them: {page, shot})
 * afterwards, with a screenshot of each ('failure') when `body` fails.
 */
export async function closing(members, body) {
  try {
    await body();
  } catch (e) {
    for (const m of members) await m.shot('failure').catch(() => {});
    throw e;
  } finally {
    for (const m of members) await m.page.context().close();
  }
}
