// Paths shared by the browser test helpers.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is tests/browser/lib/paths.mjs). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
