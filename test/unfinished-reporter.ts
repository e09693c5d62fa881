// A reporter beside vitest's default one: where a run ends with test files that never finished, it
// names each with the test or hook it was last seen in. A test process that dies (a native crash in
// the GPU driver or Dawn) takes its file's remaining reports with it, and the default reporter then
// shows only the pool's "Channel closed" error, naming no file: the one CI run on record that
// failed so (session 43's, "The futex facility returned an unexpected error code") left no trace of
// where it was.
import { writeSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';

type Hook = Parameters<NonNullable<Reporter['onHookStart']>>[0];

export default class UnfinishedReporter implements Reporter {
  /** Each started file (project and path) not yet finished: where it was last seen. */
  private unfinished = new Map<string, string>();

  constructor() {
    // The pool's error on a dead process ends vitest at once (process.exit), before onTestRunEnd:
    // said on the way out, ahead of vitest's own exit listener, which exits again from inside it.
    process.prependOnceListener('exit', () => this.tell());
  }

  private key(m: TestModule): string {
    const path = relative(process.cwd(), m.moduleId);
    return m.project.name ? `${path} (project ${m.project.name})` : path;
  }

  onTestModuleStart(m: TestModule): void {
    this.unfinished.set(this.key(m), 'its start');
  }

  onTestCaseReady(t: TestCase): void {
    this.unfinished.set(this.key(t.module), `test "${t.fullName}"`);
  }

  onTestCaseResult(t: TestCase): void {
    this.unfinished.set(this.key(t.module), `after test "${t.fullName}" (${t.result().state})`);
  }

  onHookStart(h: Hook): void {
    const m = h.entity.type === 'module' ? h.entity : h.entity.module;
    const of = h.entity.type === 'module' ? 'the file' : `"${h.entity.fullName}"`;
    this.unfinished.set(this.key(m), `${h.name} of ${of}`);
  }

  onTestModuleEnd(m: TestModule): void {
    this.unfinished.delete(this.key(m));
  }

  onTestRunEnd(): void {
    this.tell();
  }

  private tell(): void {
    if (!this.unfinished.size) return;
    const lines = [...this.unfinished].map(([file, where]) => `  ${file}: last seen in ${where}`);
    this.unfinished.clear();
    // (synchronously: on the way out, an asynchronous write to a pipe would be lost)
    writeSync(2, `\nTest files that never finished (their test process died, or the run was stopped):\n${lines.join('\n')}\n`);
  }
}
