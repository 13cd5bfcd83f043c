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
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { repoRoot } from './paths.mjs';

export { launchBrowser, screenshot, newPage } from './browser.mjs';
export { repoRoot } from './paths.mjs';

/** The debug binary that `cargo build` writes. */
export const portalBinary = path.join(repoRoot, 'target', 'debug', 'portal');

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
 * @param {object} [options]
 * @param {Record<string,string>} [options.env] extra environment for the server
 * @returns {Promise<{memberPort:number, opsPort:number, dataDir:string,
 *   url:(slug:string, path?:string)=>string, opsUrl:(path?:string)=>string,
 *   stderr:()=>string, stop:()=>Promise<void>}>}
 */
export async function startPortal(options = {}) {
  if (!existsSync(portalBinary)) {
    throw new Error(`${portalBinary} does not exist: run \`cargo build\` first`);
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'portal-browser-'));

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
    PORTAL_TENANTS_DIR: path.join(repoRoot, 'tenants'),
    NO_COLOR: '1',
    ...options.env,
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

  const cleanupDataDir = () => rm(dataDir, { recursive: true, force: true });

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
