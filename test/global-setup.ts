// The test run's temporary files: every file's os.tmpdir() directories (checkpoints, runs, image
// folders, the CLI's subprocesses') go under one directory of the run's, removed when it ends. Each
// run of the suite used to leave some 40 MB in /tmp (test/train.test.ts's runs alone 35 MB).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

export default function setup(): () => void {
  // Each project runs this: the first makes the directory. (Not a NIN_ variable: the engine warns of
  // any it does not read.)
  if (basename(tmpdir()).startsWith('nin-tests-')) return () => {};
  const dir = mkdtempSync(join(tmpdir(), 'nin-tests-'));
  const was = { TMPDIR: process.env.TMPDIR, NIN_CACHE: process.env.NIN_CACHE };
  process.env.TMPDIR = dir; // the test processes are forked after this, with this environment
  process.env.NIN_CACHE = join(dir, 'zca-cache'); // training's ZCA fits: not into the user's ~/.cache
  return () => {
    rmSync(dir, { recursive: true, force: true });
    for (const [name, value] of Object.entries(was)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}
