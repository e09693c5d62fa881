// Whether a module is the script node was started with (`node --import tsx FILE`): its URL against
// argv[1]'s, both through realpath and URL encoding, so a checkout under a symbolic link or a path
// with spaces still runs (a plain string comparison would silently do nothing there).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function isMainModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === pathToFileURL(realpathSync(new URL(moduleUrl))).href;
  } catch {
    return false;
  }
}
