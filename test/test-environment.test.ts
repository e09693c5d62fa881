// The test run itself: its temporary files go under one directory of its own, which
// test/global-setup.ts removes when the run ends (each run used to leave some 40 MB in /tmp); a
// test process that dies is named (test/unfinished-reporter.ts).
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it("puts the run's temporary files under one directory of its own", () => {
  expect(basename(tmpdir())).toMatch(/^nin-tests-/);
  expect(process.env.TMPDIR).toBe(tmpdir());
});

it('names the file and test a test process died in (vitest itself says only "Channel closed" or "Worker exited unexpectedly")', () => {
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'dying-test-process');
  const vitest = join(dir, '..', '..', '..', 'node_modules', 'vitest', 'vitest.mjs');
  const r = spawnSync(process.execPath, [vitest, 'run', '--config', 'vitest.config.ts'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('Test files that never finished (their test process died, or the run was stopped):');
  expect(r.stderr).toMatch(/^ {2}dies\.fixture\.ts: last seen in test "dies"$/m);
});
