// The test run itself: its temporary files go under one directory of its own, which
// test/global-setup.ts removes when the run ends (each run used to leave some 40 MB in /tmp).
import { tmpdir } from 'node:os';
import { basename } from 'node:path';
import { expect, it } from 'vitest';

it("puts the run's temporary files under one directory of its own", () => {
  expect(basename(tmpdir())).toMatch(/^nin-tests-/);
  expect(process.env.TMPDIR).toBe(tmpdir());
});
