// What the tests that train on MNIST share (train, dry run, range test): whether the data is here,
// mnist-small's options as the CLI makes them, quiet, and a device out of memory at a step.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { setAllocationFault } from '../engine/runtime.ts';
import { parseTrainArgs } from '../nin/cli.ts';
import { isAvailable } from '../nin/data/registry.ts';
import { saveCheckpoint } from '../nin/checkpoint.ts';
import { modelConfig, NinModel, parameterSpecs } from '../nin/model.ts';
import { writeSafetensors } from '../nin/safetensors.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import type { TrainOptions } from '../nin/train.ts';
import { SGD } from '../kernels/sgd.ts';
import { ALLOCATION_FAULT } from './helpers.ts';

export const haveMnist = isAvailable('mnist', 'train') && isAvailable('mnist', 'test');

/** `nin train --dataset mnist --model mnist-small` with `extra`'s flags, without progress or log lines. */
export function mnistSmallOptions(extra: string[]): TrainOptions {
  const { options: o } = parseTrainArgs(['--dataset', 'mnist', '--model', 'mnist-small', ...extra]);
  return { ...o, progress: false, log: () => {} };
}

/** An mnist-small checkpoint with every weight 0, in a directory of its own under `parent`: a file
 * every reader takes, for tests that need no trained network (and no GPU to make it). */
export function zeroCheckpoint(parent = tmpdir()): { dir: string; ckpt: string } {
  const dir = mkdtempSync(join(parent, 'nin-zero-'));
  const ckpt = join(dir, 'checkpoint.safetensors');
  const o = parseTrainArgs(['--model', 'mnist-small', '--out', dir]).options;
  const config = modelConfig(o);
  const params = Object.fromEntries(parameterSpecs(config).map((p) => [`param.${p.name}`, { dtype: 'F32' as const, shape: p.shape, data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)) }]));
  writeSafetensors(ckpt, params, { format: 'nin-webgpu/1', options: JSON.stringify(o), config: JSON.stringify(config), epoch: '1', step: '0', 'preprocess.transform': 'none' });
  return { dir, ckpt };
}

/** A checkpoint of an untrained model (`seed`'s initial weights) after epoch 1, with no
 * preprocessing statistics: to resume from, or to start from (--weights-from). */
export async function saveUntrained(o: TrainOptions, path: string, seed = 1): Promise<string> {
  const model = new NinModel(modelConfig(o), seed);
  const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
  await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 1, options: o });
  model.dispose();
  opt.dispose();
  return path;
}

/** What `run` throws (null: nothing) when the first training step's first new buffer (its
 * activations) is one the device cannot make: a real out-of-memory error at a step. The caller
 * trims the pool first where idle buffers could serve that step. */
export async function errorWithStepOutOfMemory(run: () => Promise<unknown>): Promise<any> {
  const step = NinModel.prototype.lossAndGradients;
  const spy = vi.spyOn(NinModel.prototype, 'lossAndGradients').mockImplementationOnce(function (this: NinModel, ...args) {
    setAllocationFault(ALLOCATION_FAULT);
    return step.apply(this, args);
  });
  try {
    return await run().then(() => null, (e) => e);
  } finally {
    spy.mockRestore();
    setAllocationFault(0);
  }
}
