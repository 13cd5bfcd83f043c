// Starts the real `portal` binary for browser tests.
//
//   const portal = await startPortal();
//   await page.goto(portal.url('daiwakenpo', '/login'));
//   ...
//   await portal.stop();
//
// The binary must already be built (`cargo build`; tests/run does it). Each call gets its
// own empty data directory (so its own SQLite database, seeded from tenants/) and free
// ports picked by the server itself, so several portals can run side by side.
//
// The browser helpers (launchBrowser, screenshot) live in ./browser.mjs and are
// re-exported here, so a test can import everything from this one module.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { repoRoot } from './paths.mjs';

export { launchBrowser, screenshot, newPage } from './browser.mjs';
export { repoRoot } from './paths.mjs';

/** The debug binary that `cargo build` writes. */
export const portalBinary = path.join(repoRoot, 'target', 'debug', 'portal');

/** The seed tenant files, as the societies' guides print their first login. */
export const SEED_TENANTS_DIR = path.join(repoRoot, 'tenants');

/**
 * The first login most browser journeys walk (lib/journeys.mjs firstLogin): 生年月日 →
 * 利用規約 → user ID and method together → password → e-mail (then, for a society that
 * confirms the address by link, the link), the method set up at once.
 */
const JOURNEY_FIRST_LOGIN = ['birth_date', 'terms', 'user_id+method', 'password', 'email'];

/**
 * A seed tenant file with its [first_login] section (from the line `[first_login]` to the
 * next line starting with `[`) replaced by the journeys' order: JOURNEY_FIRST_LOGIN, plus
 * "email_link" when the seed confirms the address by link, and factor_setup = "now".
 */
export function withJourneyFirstLogin(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === '[first_login]');
  if (start < 0) throw new Error('tenant file without a [first_login] section');
  let end = lines.findIndex((l, i) => i > start && l.startsWith('['));
  if (end < 0) end = lines.length;
  const section = lines.slice(start, end).join('\n');
  const steps = [...JOURNEY_FIRST_LOGIN];
  if (/^\s*steps\s*=.*"email_link"/m.test(section)) steps.push('email_link');
  const replaced = [
    '[first_login]',
    `steps = [${steps.map((s) => `"${s}"`).join(', ')}]`,
    'factor_setup = "now"',
    '',
  ];
  return [...lines.slice(0, start), ...replaced, ...lines.slice(end)].join('\n');
}

/** A temporary copy of tenants/*.toml with withJourneyFirstLogin applied to each. */
async function journeyTenantsDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'portal-tenants-'));
  for (const name of await readdir(SEED_TENANTS_DIR)) {
    if (!name.endsWith('.toml')) continue;
    const text = await readFile(path.join(SEED_TENANTS_DIR, name), 'utf8');
    await writeFile(path.join(dir, name), withJourneyFirstLogin(text));
  }
  return dir;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
// The line the server logs once both listeners are bound (tracing may colour it).
const READY_LINE = /listening member=127\.0\.0\.1:(\d+) ops=127\.0\.0\.1:(\d+)/;
// eslint-disable-next-line no-control-regex
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g;
// How much of the server's stderr to keep for error messages.
const STDERR_KEEP_CHARS = 64 * 1024;

/**
 * Spawns `target/debug/portal serve` and resolves once it listens.
 *
 * The societies are the seed tenant files, with the first login in the order most
 * journeys walk (withJourneyFirstLogin), unless `asPrinted`: then the seed files as they
 * are, each society's first login in the order of its printed guide. The directory is
 * `tenantsDir` on the result, for the CLI (lib/members.mjs, lib/journeys.mjs portalCli).
 *
 * @param {object} [options]
 * @param {boolean} [options.asPrinted] serve tenants/ itself
 * @param {Record<string,string>} [options.env] extra environment for the server
 * @returns {Promise<{memberPort:number, opsPort:number, dataDir:string, tenantsDir:string,
 *   url:(slug:string, path?:string)=>string, opsUrl:(path?:string)=>string,
 *   stderr:()=>string, stop:()=>Promise<void>}>}
 */
export async function startPortal(options = {}) {
  if (!existsSync(portalBinary)) {
    throw new Error(`${portalBinary} does not exist: run \`cargo build\` first`);
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'portal-browser-'));
  const ownTenantsDir = options.asPrinted || options.env?.PORTAL_TENANTS_DIR ? null : await journeyTenantsDir();
  const tenantsDir = options.env?.PORTAL_TENANTS_DIR ?? ownTenantsDir ?? SEED_TENANTS_DIR;

  // A hermetic environment: nothing PORTAL_* from the caller's shell (a developer's
  // PORTAL_DATABASE_URL, say) leaks into the server under test.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('PORTAL_')),
  );
  Object.assign(env, {
    PORTAL_LISTEN: '127.0.0.1:0',
    PORTAL_OPS_LISTEN: '127.0.0.1:0',
    PORTAL_DATA_DIR: dataDir,
    PORTAL_THEMES_DIR: path.join(repoRoot, 'themes'),
    PORTAL_ADMIN_UI_DIR: path.join(repoRoot, 'admin-ui'),
    PORTAL_DEMO: 'false',
    NO_COLOR: '1',
    ...options.env,
    PORTAL_TENANTS_DIR: tenantsDir,
  });

  const child = spawn(portalBinary, ['serve'], {
    cwd: dataDir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });

  // Everything the server writes to stderr, kept (bounded) for error messages and, with
  // PORTAL_TEST_VERBOSE=1, echoed to ours. The stream is drained for the whole life of
  // the process so the server never blocks on a full pipe.
  let stderr = '';
  let exited = null; // {code, signal} once the process is gone
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.stderr.setEncoding('utf8');

  const cleanupDataDir = async () => {
    await rm(dataDir, { recursive: true, force: true });
    if (ownTenantsDir) await rm(ownTenantsDir, { recursive: true, force: true });
  };

  let ports;
  try {
    ports = await new Promise((resolve, reject) => {
      let pending = ''; // an incomplete last line
      const timer = setTimeout(() => {
        reject(new Error(`portal did not report "listening" within ${READY_TIMEOUT_MS} ms; stderr:\n${stderr}`));
      }, READY_TIMEOUT_MS);
      const onData = (chunk) => {
        stderr = (stderr + chunk).slice(-STDERR_KEEP_CHARS);
        if (process.env.PORTAL_TEST_VERBOSE) process.stderr.write(chunk);
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop();
        for (const line of lines) {
          const m = line.replace(ANSI_ESCAPE, '').match(READY_LINE);
          if (m) {
            clearTimeout(timer);
            resolve({ memberPort: Number(m[1]), opsPort: Number(m[2]) });
          }
        }
      };
      child.stderr.on('data', onData);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`could not start ${portalBinary}: ${e.message}`));
      });
      exitPromise.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`portal exited before listening (code ${code}, signal ${signal}); stderr:\n${stderr}`));
      });
    });
  } catch (e) {
    if (!exited) {
      child.kill('SIGKILL');
      await exitPromise;
    }
    await cleanupDataDir();
    throw e;
  }

  const { memberPort, opsPort } = ports;
  return {
    memberPort,
    opsPort,
    dataDir,
    /** The tenant files the server reads (PORTAL_TENANTS_DIR): the CLI must read the same. */
    tenantsDir,
    /** A page of a tenant's site: http://<slug>.localhost:<port><path>. */
    url: (slug, urlPath = '/') => `http://${slug}.localhost:${memberPort}${urlPath}`,
    /** A path on the operations listener. */
    opsUrl: (urlPath = '/') => `http://127.0.0.1:${opsPort}${urlPath}`,
    /** What the server has written to stderr so far (the last 64 KiB). */
    stderr: () => stderr,
    /** SIGTERM, wait for the exit (SIGKILL after 15 s), remove the data directory. */
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      await cleanupDataDir();
    },
  };
}
