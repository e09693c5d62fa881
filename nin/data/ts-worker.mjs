// A worker thread's entry that loads a TypeScript module through tsx, as nin/bin.mjs loads the CLI:
// workerData.module names the module, which reads workerData itself. (Node's --import in a
// worker's execArgv does not reach the worker's module loader on Node 20.)
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
