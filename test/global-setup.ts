// The test run's temporary files: every file's os.tmpdir() directories (checkpoints, runs, image
// folders, the CLI's subprocesses') go under one directory of the run's, removed when it ends. Each
// run of the suite used to leave some 40 MB in /tmp (test/train.test.ts's runs alone 35 MB).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  if (process.env.NIN_TESTS_TMPDIR) return () => {}; // each project runs this: the first made it
  const dir = mkdtempSync(join(tmpdir(), 'nin-tests-'));
  const was = process.env.TMPDIR;
  process.env.TMPDIR = process.env.NIN_TESTS_TMPDIR = dir; // the test processes are forked after this, with this environment
  return () => {
    rmSync(dir, { recursive: true, force: true });
    delete process.env.NIN_TESTS_TMPDIR;
    if (was === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = was;
  };
}
